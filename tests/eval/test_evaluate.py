"""Whole evaluations of the synthetic subject against itself, a delayed copy and blurred copies (dlib finds it at 96 px)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from thkit.eval import evaluate, faces, image, lipsync, report
from thkit.eval.align import Clip, align, dataset_clip
from thkit.eval.image import PSNR_CAP_DB

DELAY = 3  # frames


@pytest.fixture(scope="module")
def truth(subject) -> Clip:
    return dataset_clip(subject, range(len(subject)))


@pytest.fixture(scope="module")
def identical(truth, tmp_path_factory) -> evaluate.Evaluation:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("THKIT_WEIGHTS", str(tmp_path_factory.mktemp("no-weights")))
        return evaluate.evaluate_pair(align(truth, truth), name="same.mp4", info={"pred": "same.mp4"})


def test_identical_video_scores_perfectly(identical):
    values = identical.summary
    assert values["psnr"] == values["face_psnr"] == PSNR_CAP_DB
    for key in ("ssim", "ms_ssim", "face_ssim", "face_ms_ssim"):
        assert values[key] == pytest.approx(1, abs=1e-5), key
    assert values["mouth_lmd"] == values["face_lmd"] == values["blink_error"] == 0
    assert values["mouth_correlation"] == pytest.approx(1) and values["mouth_offset"] == 0
    assert values["faces_found"] == values["truth_faces_found"] == 100 and values["frames"] == 75
    # the prediction is the truth, so its lip sync is the truth's; on this subject loudness follows the mouth
    assert values["envelope_correlation"] == values["truth_envelope_correlation"] > 0.2
    assert "sync_cosine" not in values  # no run given


def test_the_table_shows_the_weighted_metrics_when_their_module_is_there(identical, monkeypatch):
    assert {"lpips", "fid", "lse_d", "lse_c"} <= set(identical.summary)
    assert all(str(identical.summary[key]).startswith("skipped: put ") for key in ("lpips", "fid", "lse_d", "lse_c"))
    monkeypatch.setitem(__import__("sys").modules, "thkit.eval.weighted", None)  # as if it were not installed
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    assert evaluate.weighted_metrics(frames, frames, np.zeros(1280, np.float32), 16000, 25) == {}


def test_a_delayed_copy_is_found_delayed_by_exactly_its_delay(truth, identical):
    """The prediction shows frame t - DELAY at frame t (its mouth lags by DELAY frames)."""
    delayed = truth.frames[np.maximum(np.arange(75) - DELAY, 0)]
    marks = faces.landmarks_of(delayed)
    scan = lipsync.scan_offsets(identical.series["mouth_truth"], faces.mouth_opening(marks), 15)
    assert scan is not None and scan.best == DELAY
    # against the audio, the delayed mouth's best offset moves by the delay too
    energy = identical.series["envelope"]
    own = lipsync.scan_offsets(energy, identical.series["mouth_truth"], 15)
    late = lipsync.scan_offsets(energy, faces.mouth_opening(marks), 15)
    assert late.best - own.best == DELAY


def test_blur_lowers_image_scores_in_order(truth, identical):
    """Whole frames and the face box (the truth's landmarks' box), three blur strengths."""
    boxes = faces.face_boxes(faces.landmarks_of(truth.frames[:10]), 96, 96)
    previous = {"psnr": PSNR_CAP_DB, "ssim": 1.0, "ms_ssim": 1.0, "face_psnr": PSNR_CAP_DB, "face_ssim": 1.0, "face_ms_ssim": 1.0}
    for sigma in (0.6, 1.2, 2.4):
        blurred = np.stack([cv2.GaussianBlur(frame, (0, 0), sigma) for frame in truth.frames[:10]])
        scores = {key: float(np.mean(value)) for key, value in image.frame_scores(blurred, truth.frames[:10]).items()}
        box, _ = image.box_scores(blurred, truth.frames[:10], boxes)
        scores |= {f"face_{key}": float(np.nanmean(value)) for key, value in box.items()}
        for key, value in scores.items():
            assert value < previous[key], f"{key} at sigma {sigma}: {value} is not below {previous[key]}"
        previous = scores


def test_lip_sync_alone(truth, tmp_path_factory):
    """The cross-driven measures: no truth frames, only the video and its audio."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("THKIT_WEIGHTS", str(tmp_path_factory.mktemp("no-weights")))
        alone = evaluate.evaluate_lipsync(truth.frames[:40], truth.fps, truth.audio, truth.sample_rate, name="drive.wav", max_offset=5)
    assert alone.summary["frames"] == 40 and alone.summary["faces_found"] == 100
    assert isinstance(alone.summary["envelope_correlation"], float) and -5 <= alone.summary["envelope_offset"] <= 5
    assert str(alone.summary["lse_c"]).startswith("skipped") and "lpips" not in alone.summary  # no truth: no LPIPS or FID
    assert set(alone.series) == {"mouth_pred", "ear_pred", "envelope"} and alone.scans["envelope"].scores.shape == (11,)


def test_json_holds_every_frame_and_no_nan(identical, tmp_path):
    path = report.write_json([identical], "pair", tmp_path / "out.json")
    data = json.loads(path.read_text())  # strict JSON: allow_nan=False wrote it
    video = data["videos"]["same.mp4"]
    assert data["mode"] == "pair" and video["fps"] == "25" and video["pred"] == "same.mp4"
    assert len(video["per_frame"]) == 75
    first = video["per_frame"][0]
    assert first["frame"] == 0 and first["time_s"] == 0.02 and first["pred_frame"] == 0 and first["truth_frame"] == 0
    assert first["psnr"] == PSNR_CAP_DB and first["mouth_lmd"] == 0
    assert video["metrics"]["mouth_offset"] == 0 and video["offset_scores"]["mouth"]["offsets"][0] == -15


def test_report_writes_markdown_and_plots(identical, tmp_path):
    path = report.write_report([identical], tmp_path / "report", "same against same")
    text = path.read_text()
    assert text.startswith("# same against same") and "| PSNR ↑ | dB | 100.00 |" in text
    for kind in ("mouth", "psnr", "worst", "offsets"):
        png = tmp_path / "report" / f"same.mp4-{kind}.png"
        assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG" and f"]({png.name})" in text
    assert "| ↳ best offset | frames | -" in text
    assert "- skipped: LSE-D (SyncNet), LSE-C (SyncNet): put syncnet_v2.model at " in text  # each missing file named once, under the table
