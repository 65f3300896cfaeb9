"""Every measure of one video, per frame and per video: against ground truth, or lip sync alone.

`evaluate_pair` measures a prediction paired frame by frame with its truth (`thkit.eval.align`);
`evaluate_lipsync` measures a video that has no truth (a run driven by new audio) by its lip sync
alone. Both return an `Evaluation`: per-video values under the keys of `MEASURES` (plus those of
`thkit.eval.weighted` when that module is installed), per-frame series, and the offset scans.

The truth's own lip sync (`truth_*` keys) is measured the same way beside the prediction's: it is
the ceiling the measure can reach on this subject, which an absolute number does not say.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
from jaxtyping import Float, UInt8

from thkit.core.timebase import format_rate
from thkit.eval import faces, image, landmarks, lipsync
from thkit.eval.align import Pair
from thkit.eval.lipsync import DEFAULT_MAX_OFFSET, OffsetScan, SyncEncoder

Value = float | int | str | None
JSON_VERSION = 1


@dataclass(frozen=True)
class Measure:
    key: str
    label: str
    unit: str = ""
    better: str = ""  # "↑" higher is better, "↓" lower is better, "0" nearest zero is best
    digits: int = 3


MEASURES = [
    Measure("psnr", "PSNR", "dB", "↑", 2),
    Measure("ssim", "SSIM", "", "↑", 4),
    Measure("ms_ssim", "MS-SSIM", "", "↑", 4),
    Measure("face_psnr", "PSNR, face box", "dB", "↑", 2),
    Measure("face_ssim", "SSIM, face box", "", "↑", 4),
    Measure("face_ms_ssim", "MS-SSIM, face box", "", "↑", 4),
    Measure("lpips", "LPIPS (alex)", "", "↓", 4),
    Measure("fid", "FID", "", "↓", 2),
    Measure("mouth_lmd", "LMD, mouth", "px", "↓", 3),
    Measure("face_lmd", "LMD, face", "px", "↓", 3),
    Measure("blink_error", "blink error", "EAR", "↓", 4),
    Measure("mouth_correlation", "mouth opening vs truth's", "r", "↑", 3),
    Measure("mouth_offset", "  offset to truth's mouth", "frames", "0", 0),
    Measure("envelope_correlation", "mouth vs audio envelope", "r", "↑", 3),
    Measure("envelope_offset", "  best offset", "frames", "0", 0),
    Measure("envelope_best", "  r at best offset", "r", "↑", 3),
    Measure("truth_envelope_correlation", "  truth: mouth vs envelope", "r", "↑", 3),
    Measure("truth_envelope_offset", "  truth: best offset", "frames", "0", 0),
    Measure("truth_envelope_best", "  truth: r at best offset", "r", "↑", 3),
    Measure("sync_cosine", "sync encoder cosine", "cos", "↑", 3),
    Measure("sync_offset", "  best offset", "frames", "0", 0),
    Measure("sync_best", "  cosine at best offset", "cos", "↑", 3),
    Measure("truth_sync_cosine", "  truth: sync cosine", "cos", "↑", 3),
    Measure("truth_sync_offset", "  truth: best offset", "frames", "0", 0),
    Measure("truth_sync_best", "  truth: cosine at best offset", "cos", "↑", 3),
    Measure("lse_d", "LSE-D (SyncNet)", "", "↓", 3),
    Measure("lse_c", "LSE-C (SyncNet)", "", "↑", 3),
    Measure("faces_found", "faces found", "%", "↑", 0),
    Measure("truth_faces_found", "  truth: faces found", "%", "↑", 0),
    Measure("frames", "frames", "", "", 0),
]
BY_KEY = {measure.key: measure for measure in MEASURES}


@dataclass
class Evaluation:
    """One video's measures. `summary`: per-video values; `series`: per-frame arrays of equal length."""

    name: str
    fps: Fraction
    summary: dict[str, Value]
    series: dict[str, np.ndarray]
    scans: dict[str, OffsetScan] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)  # sources, alignment notes, parameters
    pred: UInt8[np.ndarray, "frames height width 3"] | None = field(default=None, repr=False)  # for the report's frame strip
    truth: UInt8[np.ndarray, "frames height width 3"] | None = field(default=None, repr=False)

    @property
    def n_frames(self) -> int:
        return len(next(iter(self.series.values())))

    def to_json(self) -> dict[str, Any]:
        """JSON-ready: NaN and infinities become null, arrays lists; per-frame rows one object per frame."""
        rows = [
            {"frame": index, "time_s": (index + 0.5) / float(self.fps)} | {key: _plain(values[index]) for key, values in self.series.items()}
            for index in range(self.n_frames)
        ]
        scans = {name: {"offsets": scan.offsets.tolist(), "scores": [_plain(v) for v in scan.scores]} for name, scan in self.scans.items()}
        return {
            **{key: _plain(value) for key, value in self.info.items()},
            "fps": format_rate(self.fps),
            "metrics": {key: _plain(value) for key, value in self.summary.items()},
            "offset_scores": scans,
            "per_frame": rows,
        }


def evaluate_pair(
    pair: Pair,
    *,
    name: str,
    sync: SyncEncoder | str | None = None,
    max_offset: int = DEFAULT_MAX_OFFSET,
    info: dict[str, Any] | None = None,
) -> Evaluation:
    """Every measure of `pair.pred` against `pair.truth` (see the module docstring).

    `sync`: the run's sync encoder, or why there is none (shown in the table), or None (no run given).
    """
    height, width = pair.truth.shape[1:3]
    series: dict[str, np.ndarray] = {"pred_frame": pair.pred_index, "truth_frame": pair.truth_index}
    summary: dict[str, Value] = {}
    scans: dict[str, OffsetScan] = {}

    series.update(image.frame_scores(pair.pred, pair.truth))
    pred_marks, truth_marks = faces.landmarks_of(pair.pred), faces.landmarks_of(pair.truth)
    # The face box is the truth's: both frames are cut where the face really is.
    box, scales = image.box_scores(pair.pred, pair.truth, faces.face_boxes(truth_marks, width, height))
    series.update({f"face_{key}": values for key, values in box.items()})
    series["mouth_lmd"] = landmarks.lmd(pred_marks, truth_marks, landmarks.MOUTH)
    series["face_lmd"] = landmarks.lmd(pred_marks, truth_marks, landmarks.FACE)
    series["ear_pred"], series["ear_truth"] = faces.eye_ratio(pred_marks), faces.eye_ratio(truth_marks)
    series["blink_error"] = landmarks.blink_error(pred_marks, truth_marks)
    for key in ("psnr", "ssim", "ms_ssim", "face_psnr", "face_ssim", "face_ms_ssim", "mouth_lmd", "face_lmd", "blink_error"):
        summary[key] = _mean(series[key])

    series["mouth_pred"], series["mouth_truth"] = faces.mouth_opening(pred_marks), faces.mouth_opening(truth_marks)
    summary["mouth_correlation"] = lipsync.correlation(series["mouth_truth"], series["mouth_pred"])
    scan = lipsync.scan_offsets(series["mouth_truth"], series["mouth_pred"], max_offset)
    if scan is not None:
        scans["mouth"] = scan
        summary["mouth_offset"] = scan.best

    if pair.audio is None:
        summary["envelope_correlation"] = "skipped: neither video has an audio track"
    else:
        series["envelope"] = lipsync.envelope(pair.audio, pair.sample_rate, pair.fps, pair.n_frames)
        for prefix, mouth in (("", series["mouth_pred"]), ("truth_", series["mouth_truth"])):
            _envelope_measures(summary, scans, series["envelope"], mouth, max_offset, prefix)
    if sync is not None:
        for prefix, frames, marks in (("", pair.pred, pred_marks), ("truth_", pair.truth, truth_marks)):
            _sync_measures(series, summary, scans, sync, frames, marks, pair.fps, pair.audio, pair.sample_rate, max_offset, prefix)
    if pair.audio is not None:
        summary.update(weighted_metrics(pair.pred, pair.truth, pair.audio, pair.sample_rate, pair.fps))
    summary["faces_found"] = 100 * float(faces.found(pred_marks).mean())
    summary["truth_faces_found"] = 100 * float(faces.found(truth_marks).mean())
    summary["frames"] = pair.n_frames
    details = {
        "ms_ssim_scales": image.ms_ssim_scales(height, width),
        "face_ms_ssim_scales": scales,
        "max_offset": max_offset,
        "notes": list(pair.notes),
    }
    return Evaluation(name, pair.fps, summary, series, scans, (info or {}) | details, pair.pred, pair.truth)


def evaluate_lipsync(
    frames: UInt8[np.ndarray, "frames height width 3"],
    fps: Fraction,
    audio: Float[np.ndarray, "samples"],
    sample_rate: int,
    *,
    name: str,
    sync: SyncEncoder | str | None = None,
    max_offset: int = DEFAULT_MAX_OFFSET,
    info: dict[str, Any] | None = None,
) -> Evaluation:
    """The lip-sync measures of a video that has no ground truth, with the audio under its frames."""
    summary: dict[str, Value] = {}
    scans: dict[str, OffsetScan] = {}
    marks = faces.landmarks_of(frames)
    series = {"mouth_pred": faces.mouth_opening(marks), "ear_pred": faces.eye_ratio(marks)}
    series["envelope"] = lipsync.envelope(audio, sample_rate, fps, frames.shape[0])
    _envelope_measures(summary, scans, series["envelope"], series["mouth_pred"], max_offset, "")
    if sync is not None:
        _sync_measures(series, summary, scans, sync, frames, marks, fps, audio, sample_rate, max_offset, "")
    summary.update(weighted_metrics(frames, None, audio, sample_rate, fps))
    summary["faces_found"] = 100 * float(faces.found(marks).mean())
    summary["frames"] = int(frames.shape[0])
    return Evaluation(name, fps, summary, series, scans, (info or {}) | {"max_offset": max_offset}, frames, None)


def weighted_metrics(
    pred: UInt8[np.ndarray, "frames height width 3"],
    truth: UInt8[np.ndarray, "frames height width 3"] | None,
    audio: Float[np.ndarray, "samples"],
    sample_rate: int,
    fps: Fraction,
) -> dict[str, Value]:
    """LPIPS, FID, LSE-D and LSE-C from `thkit.eval.weighted`, or nothing when that module is not installed."""
    try:
        module = importlib.import_module("thkit.eval.weighted")
    except ModuleNotFoundError as error:
        if error.name != "thkit.eval.weighted":
            raise
        return {}
    return dict(module.weighted_metrics(pred, truth, audio, sample_rate, fps))


def _envelope_measures(
    summary: dict[str, Value], scans: dict[str, OffsetScan], energy: np.ndarray, mouth: np.ndarray, max_offset: int, prefix: str
) -> None:
    """The audio-envelope baseline of one mouth-opening series, under `prefix`."""
    summary[f"{prefix}envelope_correlation"] = lipsync.correlation(energy, mouth)
    scan = lipsync.scan_offsets(energy, mouth, max_offset)
    if scan is not None:
        scans[f"{prefix}envelope"] = scan
        summary[f"{prefix}envelope_offset"], summary[f"{prefix}envelope_best"] = scan.best, scan.best_score


def _sync_measures(
    series: dict[str, np.ndarray],
    summary: dict[str, Value],
    scans: dict[str, OffsetScan],
    sync: SyncEncoder | str,
    frames: np.ndarray,
    marks: np.ndarray,
    fps: Fraction,
    audio: np.ndarray | None,
    sample_rate: int,
    max_offset: int,
    prefix: str,
) -> None:
    """The sync encoder's cosine on `frames`, under `prefix`; the reason instead when it cannot run."""
    if isinstance(sync, str) or audio is None:
        summary[f"{prefix}sync_cosine"] = sync if isinstance(sync, str) else "skipped: the video has no audio"
        return
    measure = lipsync.sync_measure(sync, frames, marks, fps, audio, sample_rate, max_offset)
    if isinstance(measure, str):
        summary[f"{prefix}sync_cosine"] = measure
        return
    series[f"{prefix}sync_cosine"] = measure.cosine
    summary[f"{prefix}sync_cosine"] = _mean(measure.cosine)
    if measure.scan is not None:
        scans[f"{prefix}sync"] = measure.scan
        summary[f"{prefix}sync_offset"], summary[f"{prefix}sync_best"] = measure.scan.best, measure.scan.best_score


def _mean(values: np.ndarray) -> float | None:
    """Mean over the frames that have a value; None when none has."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None


def _plain(value: Any) -> Any:
    """A JSON-ready value: numpy scalars to Python, NaN and infinities to None, lists and dicts recursively."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
