"""PSNR, SSIM and MS-SSIM per frame, whole and in boxes, on inputs whose answer is known."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from skimage import data

from thkit.eval import image
from thkit.eval.image import PSNR_CAP_DB


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    """[2, 192, 192, 3]: the astronaut photo (a real face, real texture) and its mirror image."""
    photo = cv2.resize(data.astronaut(), (192, 192), interpolation=cv2.INTER_AREA)
    return np.stack([photo, photo[:, ::-1]])


def blurred(frames: np.ndarray, sigma: float) -> np.ndarray:
    return np.stack([cv2.GaussianBlur(frame, (0, 0), sigma) for frame in frames])


def test_identical_frames_score_the_cap_and_one(photos):
    scores = image.frame_scores(photos, photos)
    np.testing.assert_array_equal(scores["psnr"], [PSNR_CAP_DB, PSNR_CAP_DB])  # capped, not infinite
    np.testing.assert_allclose(scores["ssim"], 1, atol=1e-5)  # float32
    np.testing.assert_allclose(scores["ms_ssim"], 1, atol=1e-5)


def test_psnr_of_a_uniform_error_is_exact():
    """Every value 5 levels off: MSE = (5/255)^2, so PSNR = 20 log10(255 / 5) dB."""
    truth = np.full((3, 32, 48, 3), 100, dtype=np.uint8)
    np.testing.assert_allclose(image.psnr(truth + 5, truth), 20 * math.log10(255 / 5), rtol=1e-6)


def test_more_blur_scores_lower_on_every_measure(photos):
    sigmas = (0.7, 1.5, 3.0)
    scores = [image.frame_scores(blurred(photos, sigma), photos) for sigma in sigmas]
    for name in ("psnr", "ssim", "ms_ssim"):
        values = np.array([score[name] for score in scores])  # [blur, frame]
        assert (values < (PSNR_CAP_DB if name == "psnr" else 1)).all(), name
        assert (np.diff(values, axis=0) < 0).all(), f"{name} does not fall with blur: {values.tolist()}"
    boxes = np.array([[48.0, 24.0, 144.0, 120.0]] * 2)
    inside = [image.box_scores(blurred(photos, sigma), photos, boxes)[0] for sigma in sigmas]
    for name in ("psnr", "ssim", "ms_ssim"):
        assert (np.diff([score[name] for score in inside], axis=0) < 0).all(), name


def test_box_scores_look_only_inside_the_box(photos):
    """A prediction wrong only outside the box is perfect inside it; a NaN box (no face) scores NaN."""
    pred = photos.copy()
    pred[:, 150:] = 0
    boxes = np.array([[10.2, 20.0, 140.0, 149.5], [np.nan] * 4])
    scores, scales = image.box_scores(pred, photos, boxes)
    assert scores["psnr"][0] == PSNR_CAP_DB and abs(scores["ssim"][0] - 1) < 1e-5 and abs(scores["ms_ssim"][0] - 1) < 1e-5
    assert np.isnan([values[1] for values in scores.values()]).all()
    assert scales == image.ms_ssim_scales(130, 130)  # the box rounded outwards: 10..140 x 20..150
    assert image.psnr(pred, photos)[0] < 20


def test_ms_ssim_uses_the_scales_the_size_allows():
    assert [image.ms_ssim_scales(side, side) for side in (10, 11, 43, 44, 98, 99, 175, 176, 512)] == [0, 1, 2, 3, 3, 4, 4, 5, 5]
    assert image.ms_ssim_scales(512, 60) == 3  # the short side decides
    tiny = np.zeros((1, 8, 8, 3), dtype=np.uint8)
    assert np.isnan(image.ms_ssim(tiny, tiny)).all() and np.isnan(image.ssim(tiny, tiny)).all()
    assert image.psnr(tiny, tiny)[0] == PSNR_CAP_DB


def test_frames_of_different_shapes_are_a_bug():
    with pytest.raises(ValueError, match="differ in shape"):
        image.psnr(np.zeros((1, 8, 8, 3), np.uint8), np.zeros((1, 8, 9, 3), np.uint8))
