"""Per-frame signals from landmarks: eye closure, mouth opening, and face and lip boxes.

Blink and mouth are measured on the 3D landmarks in head space, so that turning or tilting the
head (which foreshortens the eyes in the image) does not read as a blink.

- blink: the eye aspect ratio (EAR: mean lid gap over the corner-to-corner width, both eyes) as
  closure, 1 - EAR / EAR_open, clipped to 0..1, where EAR_open is the subject's median EAR over the
  clip (people blink a few percent of the time, so the median is an open eye). 0 open, 1 lids
  together. This replaces the OpenFace AU45 the peers use (an external binary with its own models).
- mouth: the inner-lip opening (mean gap of the pairs 61-67, 62-66, 63-65) divided by the face's
  height (landmark 27 to 8), as `thkit.data.layout` defines it.
- face box: the 68 landmarks' bounding box; lip box: the lips' (48-67) bounding box made square
  and grown by LIP_MARGIN, like the peers' lip crops for the lip loss. Both in pixels, clipped to
  the image.
"""

from __future__ import annotations

import numpy as np

from thkit.data.preprocess.mean_face import INNER_LIPS, LEFT_EYE, OUTER_LIPS, RIGHT_EYE

INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))
LIP_MARGIN = 0.2


def eye_aspect_ratio(landmarks: np.ndarray) -> np.ndarray:
    """[N] mean EAR of both eyes: (|p1 - p5| + |p2 - p4|) / (2 |p0 - p3|) over each eye's six points."""
    ratios = []
    for eye in (LEFT_EYE, RIGHT_EYE):
        p = landmarks[:, eye]
        gaps = np.linalg.norm(p[:, 1] - p[:, 5], axis=-1) + np.linalg.norm(p[:, 2] - p[:, 4], axis=-1)
        ratios.append(gaps / (2 * np.linalg.norm(p[:, 0] - p[:, 3], axis=-1)))
    return np.mean(ratios, axis=0)


def blink(landmarks3d: np.ndarray) -> np.ndarray:
    """[N] eye closure, 0 open .. 1 closed."""
    ratio = eye_aspect_ratio(landmarks3d)
    open_ratio = max(float(np.median(ratio)), 1e-6)
    return np.clip(1 - ratio / open_ratio, 0, 1).astype(np.float32)


def mouth(landmarks3d: np.ndarray) -> np.ndarray:
    """[N] inner-lip opening over the face's height."""
    gaps = np.mean([np.linalg.norm(landmarks3d[:, a] - landmarks3d[:, b], axis=-1) for a, b in INNER_LIP_PAIRS], axis=0)
    return (gaps / np.linalg.norm(landmarks3d[:, 27] - landmarks3d[:, 8], axis=-1)).astype(np.float32)


def face_boxes(landmarks2d: np.ndarray, width: int, height: int) -> np.ndarray:
    """[N, 4] x0, y0, x1, y1 of all 68 landmarks."""
    return _clip(np.concatenate([landmarks2d.min(axis=1), landmarks2d.max(axis=1)], axis=1), width, height)


def lip_boxes(landmarks2d: np.ndarray, width: int, height: int) -> np.ndarray:
    """[N, 4] square boxes around the lips, grown by LIP_MARGIN."""
    lips = landmarks2d[:, np.concatenate([OUTER_LIPS, INNER_LIPS])]
    low, high = lips.min(axis=1), lips.max(axis=1)
    centre = (low + high) / 2
    half = (1 + LIP_MARGIN) * (high - low).max(axis=1, keepdims=True) / 2
    return _clip(np.concatenate([centre - half, centre + half], axis=1), width, height)


def _clip(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.clip(boxes, 0, [width, height, width, height]).astype(np.float32)
