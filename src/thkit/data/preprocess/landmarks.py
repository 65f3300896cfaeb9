"""68 iBUG landmarks per frame with dlib: HOG face detection, the 68-point shape predictor, tracking.

The models are the ones shipped by the `face_recognition_models` package, found through importlib
(its own `__init__` imports `pkg_resources`, which new setuptools lacks, so it is never imported).

Speed: the HOG detector is the slow part (40 ms on a 512 frame), the shape predictor is not
(under 1 ms). So the detector runs on a frame scaled so the face is about 100 px (HOG's window is
80 px), and only every `detect_every` frames or when tracking is lost. In between, the shape
predictor's box comes from the previous frame's landmarks, through the box-from-landmarks relation
measured on this subject's own detections, and the predictor runs twice (box from the previous
frame, then box from its own answer) so that each frame's landmarks depend on that frame alone and
do not drift. Detections are used to check the tracker, not to reset it, which would make the
landmarks jump every `detect_every` frames.

Several faces: the largest is taken first, then always the one overlapping the tracked face
(a `MultipleFacesWarning` says how often this happened). Frames where the face is lost are NaN
until `fill_dropouts` interpolates the short gaps and reports the long ones.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path

import cv2
import numpy as np
from scipy.signal import savgol_filter

from thkit.core.errors import ThkitError
from thkit.data.preprocess.problems import FaceDropoutWarning, MultipleFacesWarning

SHAPE_PREDICTOR = "shape_predictor_68_face_landmarks.dat"
TARGET_FACE = 100  # px: detector input is scaled so faces are about this size
DETECT_EVERY = 5
MAX_GAP_SECONDS = 0.5  # longer dropouts are reported, shorter ones interpolated silently
SMOOTH_SECONDS = 0.2  # Savitzky-Golay window: removes jitter, keeps lip motion
# dlib detection box relative to the landmarks' bounding box: centre offset and side, in units of
# the landmark box's mean side. Measured on the astronaut photo; replaced by the subject's own.
DEFAULT_BOX_RELATION = np.array([-0.03, -0.07, 0.95])


def model_file(name: str) -> Path:
    """A model file shipped by face_recognition_models; ThkitError when the package is missing."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ThkitError(
            "the dlib face models are not installed (package face_recognition_models)",
            hint="pip install face_recognition_models dlib-bin",
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    if not path.is_file():
        raise ThkitError(f"{path}: missing from face_recognition_models", hint="reinstall face_recognition_models")
    return path


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class FaceDetector:
    """dlib's HOG face detector on a copy of the frame scaled so faces are about TARGET_FACE px."""

    def __init__(self) -> None:
        import dlib

        self._detector = dlib.get_frontal_face_detector()
        self.scale: float | None = None  # learnt from the first detection

    def __call__(self, gray: np.ndarray) -> list[np.ndarray]:
        """Face boxes [x0, y0, x1, y1] in `gray`'s pixels, largest first."""
        if self.scale is not None:
            tries = [self.scale, min(self.scale * 2, 2.0)]
        else:
            first = min(1.0, 640 / max(gray.shape))
            tries = [first] + [s for s in (1.0, 2.0) if s > first]
        for scale in tries:
            small = gray if scale == 1.0 else cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
            rects = self._detector(small, 0)
            if len(rects):
                boxes = [np.array([r.left(), r.top(), r.right(), r.bottom()], dtype=np.float64) / scale for r in rects]
                boxes.sort(key=lambda box: -(box[2] - box[0]) * (box[3] - box[1]))
                self.scale = float(np.clip(TARGET_FACE / (boxes[0][2] - boxes[0][0]), 0.1, 2.0))
                return boxes
        return []


class LandmarkTracker:
    """Feed frames in order with `track(gray)`; returns [68, 2] landmarks or None when the face is lost."""

    def __init__(self, detect_every: int = DETECT_EVERY) -> None:
        import dlib

        self._dlib = dlib
        self._predictor = dlib.shape_predictor(str(model_file(SHAPE_PREDICTOR)))
        self.detector = FaceDetector()
        self.detect_every = detect_every
        self.multiple_faces = 0  # frames where the detector saw more than one face
        self._relations: deque[np.ndarray] = deque(maxlen=50)
        self._previous: np.ndarray | None = None
        self._last_seen: np.ndarray | None = None  # box of the subject, kept across dropouts
        self._count = 0

    def track(self, gray: np.ndarray) -> np.ndarray | None:
        due = self._count % self.detect_every == 0 or self._previous is None
        self._count += 1
        if self._previous is not None:
            landmarks = self._refine(gray, self._box_from(self._previous))
            if not due:
                self._previous = landmarks
                return landmarks
            detections = self.detector(gray)
            self.multiple_faces += len(detections) > 1
            tracked = self._box_from(landmarks)
            overlaps = [_box_iou(tracked, box) for box in detections]
            if detections and max(overlaps) >= 0.3:
                self._learn(detections[int(np.argmax(overlaps))], landmarks)
                self._previous = landmarks
                self._last_seen = tracked
                return landmarks
            # the tracker drifted or the face vanished: start again from a detection
            self._previous = None
            return self._acquire(gray, detections)
        detections = self.detector(gray)
        self.multiple_faces += len(detections) > 1
        return self._acquire(gray, detections)

    def _acquire(self, gray: np.ndarray, detections: list[np.ndarray]) -> np.ndarray | None:
        if not detections:
            return None
        if self._last_seen is None:
            box = detections[0]  # the largest face
        else:
            box = max(detections, key=lambda b: _box_iou(b, self._last_seen) - 1e-3 * np.linalg.norm(b[:2] - self._last_seen[:2]))
        landmarks = self._predict(gray, box)
        self._learn(box, landmarks)
        landmarks = self._refine(gray, self._box_from(landmarks))
        self._previous = landmarks
        self._last_seen = box
        return landmarks

    def _refine(self, gray: np.ndarray, box: np.ndarray) -> np.ndarray:
        """Predict from `box`, then again from the box those landmarks imply."""
        return self._predict(gray, self._box_from(self._predict(gray, box)))

    def _predict(self, gray: np.ndarray, box: np.ndarray) -> np.ndarray:
        rect = self._dlib.rectangle(*(int(round(v)) for v in box))
        shape = self._predictor(gray, rect)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)

    def _relation(self) -> np.ndarray:
        return np.median(np.array(self._relations), axis=0) if self._relations else DEFAULT_BOX_RELATION

    def _learn(self, box: np.ndarray, landmarks: np.ndarray) -> None:
        low, high = landmarks.min(axis=0), landmarks.max(axis=0)
        unit = float(np.mean(high - low))
        offset = ((box[:2] + box[2:]) / 2 - (low + high) / 2) / unit
        self._relations.append(np.array([offset[0], offset[1], float(np.mean(box[2:] - box[:2])) / unit]))

    def _box_from(self, landmarks: np.ndarray) -> np.ndarray:
        dx, dy, side = self._relation()
        low, high = landmarks.min(axis=0), landmarks.max(axis=0)
        unit = float(np.mean(high - low))
        centre = (low + high) / 2 + unit * np.array([dx, dy])
        half = side * unit / 2
        return np.array([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half])


def track_landmarks(grays: Iterable[np.ndarray], n_frames: int, advance: Callable[[int], None] = lambda n=1: None) -> np.ndarray:
    """[N, 68, 2] float64 landmarks, NaN where the face was lost; warns when several faces were seen.

    In the dataset's pixel coordinates: dlib puts pixel centres on integers, the layout (like
    nerfstudio) at +1/2, so 1/2 is added.
    """
    tracker = LandmarkTracker()
    landmarks = np.full((n_frames, 68, 2), np.nan)
    for index, gray in enumerate(grays):
        found = tracker.track(gray)
        if found is not None:
            landmarks[index] = found
        advance(1)
    landmarks += 0.5
    if tracker.multiple_faces:
        warnings.warn(
            f"more than one face in {tracker.multiple_faces} checked frames; kept the largest, then the same person",
            MultipleFacesWarning,
            stacklevel=2,
        )
    return landmarks


def dropouts(missing: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True in a boolean array, as (start, stop) index pairs."""
    edges = np.diff(np.concatenate([[0], missing.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def fill_dropouts(landmarks: np.ndarray, fps: float, source: str = "") -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Interpolate frames without a face (linearly; held at the clip's ends).

    Returns the filled landmarks and the long gaps (over MAX_GAP_SECONDS), which are also warned
    about: they are filled too, so every array has a row per frame, but their rows are guesses.
    """
    missing = np.isnan(landmarks).any(axis=(1, 2))
    if missing.all():
        raise ThkitError(
            f"{source}: no face found in any frame",
            hint="give a video where the subject faces the camera, lit and unobstructed",
        )
    filled = landmarks.copy()
    if missing.any():
        frames = np.arange(landmarks.shape[0])
        flat = landmarks.reshape(landmarks.shape[0], -1)
        filled = np.stack([np.interp(frames, frames[~missing], flat[~missing, k]) for k in range(flat.shape[1])], axis=1)
        filled = filled.reshape(landmarks.shape)
    long_gaps = [(a, b) for a, b in dropouts(missing) if b - a > MAX_GAP_SECONDS * fps]
    if long_gaps:
        spans = ", ".join(f"{a / fps:.1f}-{b / fps:.1f} s" for a, b in long_gaps[:10])
        warnings.warn(
            f"{source}: the face was lost for longer than {MAX_GAP_SECONDS} s at {spans}"
            f"{' and more' if len(long_gaps) > 10 else ''}; those frames hold interpolated landmarks",
            FaceDropoutWarning,
            stacklevel=2,
        )
    return filled, long_gaps


def smooth_landmarks(landmarks: np.ndarray, fps: float) -> np.ndarray:
    """Savitzky-Golay smoothing over time (window SMOOTH_SECONDS, quadratic): less jitter, same motion."""
    window = max(3, int(round(SMOOTH_SECONDS * fps)) | 1)
    if landmarks.shape[0] < window:
        return landmarks.copy()
    return savgol_filter(landmarks, window, polyorder=2, axis=0, mode="interp")
