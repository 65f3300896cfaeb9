"""Faces in frames: dlib's 68 landmarks per frame, tracked exactly as preprocessing tracks them.

Prediction and truth are measured by the same tracker (`thkit.data.preprocess.landmarks`), so that
its own bias cancels in the differences; a dataset's stored landmarks are never used for the truth,
because a synthetic subject's are exact projections that dlib would not reproduce. The signals read
from landmarks (mouth opening, eye aspect ratio, face and lip boxes) are the preprocessing's own
(`thkit.data.preprocess.signals`), on the 2D points.
"""

from __future__ import annotations

import warnings

import numpy as np
from jaxtyping import Float, UInt8

from thkit.data.preprocess import signals
from thkit.data.preprocess.landmarks import track_landmarks


def landmarks_of(frames: UInt8[np.ndarray, "frames height width 3"]) -> Float[np.ndarray, "frames 68 2"]:
    """68 landmarks per frame in the dataset's pixel coordinates; NaN rows where no face was found."""
    import cv2

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # several faces: the tracker keeps the largest, then the same one
        return track_landmarks((cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames), len(frames))


def found(landmarks: Float[np.ndarray, "frames 68 2"]) -> np.ndarray:
    """[frames] bool: a face was found."""
    return np.isfinite(landmarks).all(axis=(1, 2))


def mouth_opening(landmarks: Float[np.ndarray, "frames 68 2"]) -> Float[np.ndarray, "frames"]:
    """Inner-lip gap over face height (NaN where no face), as the dataset's `mouth` is defined."""
    return signals.mouth(landmarks).astype(np.float64)


def eye_ratio(landmarks: Float[np.ndarray, "frames 68 2"]) -> Float[np.ndarray, "frames"]:
    """Eye aspect ratio, both eyes' mean (about 0.3 open, near 0 closed; NaN where no face)."""
    return signals.eye_aspect_ratio(landmarks).astype(np.float64)


def face_boxes(landmarks: Float[np.ndarray, "frames 68 2"], width: int, height: int) -> Float[np.ndarray, "frames 4"]:
    """The 68 landmarks' bounding box [x0, y0, x1, y1] in pixels, clipped to the frame; NaN where no face."""
    return signals.face_boxes(landmarks, width, height).astype(np.float64)


def lip_boxes(landmarks: Float[np.ndarray, "frames 68 2"], width: int, height: int) -> Float[np.ndarray, "frames 4"]:
    """The preprocessing's square lip boxes (the sync loss's crops centre on them); NaN where no face."""
    return signals.lip_boxes(landmarks, width, height).astype(np.float64)
