"""LMD and blink error on landmark arrays whose distances are known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from thkit.eval import faces, landmarks


@pytest.fixture
def face() -> np.ndarray:
    """[1, 68, 2] landmarks: random points, with eyes built so that EAR is exactly 0.5."""
    points = np.random.default_rng(0).uniform(0, 100, size=(1, 68, 2))
    eye = np.array([[0, 0], [1, -1], [3, -1], [4, 0], [3, 1], [1, 1]], dtype=float)  # EAR = (2 + 2) / (2 * 4)
    points[0, 36:42] = eye + [30, 40]
    points[0, 42:48] = eye + [60, 40]
    return points


def test_identical_landmarks_are_zero(face):
    assert landmarks.lmd(face, face)[0] == 0 and landmarks.lmd(face, face, landmarks.FACE)[0] == 0
    assert landmarks.blink_error(face, face)[0] == 0


def test_lmd_ignores_where_the_face_is(face):
    """Each frame's points are centred first, so a shifted head is not a wrong mouth (as the peers do)."""
    moved = face + [7.5, -3.0]
    assert landmarks.lmd(moved, face)[0] == pytest.approx(0, abs=1e-12)
    assert landmarks.lmd(moved, face, landmarks.FACE)[0] == pytest.approx(0, abs=1e-12)


def test_lmd_of_one_moved_lip_point(face):
    """One of the 20 lip points moved by d (|d| = 5): after centring, it is off by 19/20 d and the other
    19 by d/20 each, so the mean distance is (19/20 + 19/20) |d| / 20 = 0.475."""
    moved = face.copy()
    moved[0, 50] += [3.0, 4.0]
    assert landmarks.lmd(moved, face)[0] == pytest.approx(0.475)
    # the whole face: 68 points, (67/68 + 67/68) * 5 / 68
    assert landmarks.lmd(moved, face, landmarks.FACE)[0] == pytest.approx(2 * 67 / 68 * 5 / 68)
    assert landmarks.MOUTH.tolist() == list(range(48, 68))


def test_blink_error_is_the_eye_aspect_ratio_difference(face):
    closed = face.copy()
    for first in (36, 42):
        closed[0, first + 1 : first + 3, 1] = closed[0, first, 1]  # upper lid down to the corners' height
        closed[0, first + 4 : first + 6, 1] = closed[0, first, 1]
    assert faces.eye_ratio(face)[0] == pytest.approx(0.5) and faces.eye_ratio(closed)[0] == pytest.approx(0)
    assert landmarks.blink_error(closed, face)[0] == pytest.approx(0.5)


def test_a_frame_without_a_face_scores_nan(face):
    missing = np.concatenate([face, np.full_like(face, np.nan)])
    both = np.concatenate([face, face])
    assert np.isnan(landmarks.lmd(missing, both)).tolist() == [False, True]
    assert np.isnan(landmarks.blink_error(both, missing)).tolist() == [False, True]
