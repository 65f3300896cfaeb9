"""Landmark distances per frame: LMD on the mouth and the whole face, and blink error.

LMD (landmark distance) as the peer systems compute it (ER-NeRF's `LMDMeter`, SyncTalk, GeneFace):
the mean Euclidean distance between corresponding landmarks of prediction and truth, in pixels of
the frame, after subtracting each frame's own mean of the points measured, so that a head placed a
few pixels off does not count as a wrong mouth shape. Mouth LMD uses the 20 lip points 48-67; face
LMD all 68, centred the same way (shape, not placement). The peers detect with FAN or dlib; thkit
uses dlib's 68 points (`thkit.eval.faces`), so values compare with the dlib-based ones.

Blink error: the absolute difference of the eye aspect ratio (EAR, `faces.eye_ratio`) of prediction
and truth per frame. It stands in for the peers' AUE on OpenFace's action unit 45 (an external
binary), and like it is near 0 when the eyes open and close when the truth's do.

A frame where either side has no face scores NaN; a video's score is the mean of the others.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Float

from thkit.eval.faces import eye_ratio

MOUTH = np.arange(48, 68)
FACE = np.arange(68)

Landmarks = Float[np.ndarray, "frames 68 2"]


def lmd(pred: Landmarks, truth: Landmarks, points: np.ndarray = MOUTH) -> Float[np.ndarray, "frames"]:
    """Mean distance in pixels of `points` after centring each frame's points on their mean."""
    p, t = pred[:, points], truth[:, points]
    p = p - p.mean(axis=1, keepdims=True)
    t = t - t.mean(axis=1, keepdims=True)
    return np.linalg.norm(p - t, axis=-1).mean(axis=1)


def blink_error(pred: Landmarks, truth: Landmarks) -> Float[np.ndarray, "frames"]:
    """|EAR(pred) - EAR(truth)| per frame."""
    return np.abs(eye_ratio(pred) - eye_ratio(truth))
