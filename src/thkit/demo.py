"""`thkit demo`: the whole path on the synthetic subject, on a CPU, with numbers at the end.

1. Train `examples/demo.yaml` (DAMC's structure at CPU size) into `out/` (a run folder; a run of
   the demo already there is resumed, a finished one is reused as it is).
2. Render the held-out sentence (`HELD_OUT_TEXT`, which the subject never says in training) spoken
   by the offline voice, with poses replayed from training: `out/held_out.mp4`.
3. Render the validation split (the last 1/11 of the subject's frames, never trained on) driven by
   its own audio, with its own poses and blinks: `out/val.mp4`, whose frames have ground truth.
4. Measure and print: PSNR and SSIM of the rendered validation frames against the ground truth
   (whole frames); mouth-opening correlation, the mouth opening being measured in the rendered
   frames with dlib's 68-point shape predictor (the preprocessing's tracker) and correlated with the
   subject's ground-truth `mouth` over the validation frames, and, for the held-out sentence, with
   the mouth track the synthetic subject's generator makes for that audio (its phones, aligned by
   pocketsphinx, through the same visemes and head geometry). dlib measured on the ground-truth
   frames themselves is reported beside it: the ceiling of the measurement. Everything also goes to
   `out/metrics.json`.

`fast=True` shrinks everything (3 s of 64 px subject, a few steps per stage) to check the path end
to end in about a minute; its numbers mean nothing.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from thkit.core.errors import ThkitError

SPEC = Path(__file__).resolve().parents[2] / "examples" / "demo.yaml"
HELD_OUT_VIDEO, VAL_VIDEO, METRICS = "held_out.mp4", "val.mp4", "metrics.json"

# --set overrides of the fast path: a tiny subject, tiny networks, a few steps per stage.
FAST = (
    "data.synthetic.seconds=3",
    "data.synthetic.size=64",
    "nodes.sync.params.dim=16",
    "nodes.sync.params.mouth_height=16",
    "nodes.sync.params.mouth_width=32",
    "nodes.fuse.params.dim=8",
    "nodes.fuse.params.heads=2",
    "nodes.head.params.resolutions=[16, 32]",
    "nodes.head.params.hidden=16",
    "nodes.head.params.occupancy=16",
    "nodes.torso.params.resolutions=[16, 32]",
    "nodes.torso.params.hidden=16",
    "train.stages.0.steps=2",
    "train.stages.1.steps=8",
    "train.stages.2.steps=2",
    "train.stages.3.steps=2",
)


def run_demo(out: Path = Path("runs/demo"), *, fast: bool = False) -> dict[str, Any]:
    """Train, render and measure the demo into `out` (see the module docstring); returns the metrics."""
    import torch

    from thkit.audio.speech import load_speech
    from thkit.data.synth import HELD_OUT_TEXT
    from thkit.render.pipeline import load_run
    from thkit.train import TrainOptions, train

    if not SPEC.is_file():
        raise ThkitError(f"the demo spec {SPEC} is missing", hint="thkit demo runs from a source checkout of thkit, which holds examples/")
    out = Path(out)
    started = time.perf_counter()
    options = TrainOptions(rays=256, preview_frames=2, render_chunk=4096) if fast else TrainOptions()
    run = train(SPEC, out, overrides=FAST if fast else (), resume=True, options=options)
    trained = time.perf_counter()
    loaded = load_run(run)
    meta, fps = loaded.dataset.meta, loaded.graph.context.video_fps

    from thkit.render.drive import Drive
    from thkit.render.pipeline import render_audio

    audio, timeline = load_speech(text=HELD_OUT_TEXT, sample_rate=loaded.graph.context.sample_rate)
    held_out_frames: list[np.ndarray] = []
    drive = Drive.replay(timeline.frames(fps), meta.train_frames, meta.train_frames)
    held_out = render_audio(loaded, audio, timeline, drive, out / HELD_OUT_VIDEO, on_frame=lambda _, rgb: held_out_frames.append(rgb))
    generated_mouth = _generator_mouth(audio, HELD_OUT_TEXT, drive.n_frames, float(fps))

    val_audio, val_timeline = _val_audio(loaded.dataset, meta.val_frames, fps)
    val_frames: list[np.ndarray] = []
    val_drive = Drive.replay(len(meta.val_frames), meta.val_frames, meta.train_frames)
    val = render_audio(loaded, val_audio, val_timeline, val_drive, out / VAL_VIDEO, on_frame=lambda _, rgb: val_frames.append(rgb))

    truth = np.stack([loaded.dataset.frame(index) for index in meta.val_frames])
    rendered = np.stack(val_frames)
    true_mouth = np.asarray(loaded.dataset.array("mouth"), dtype=np.float64)[meta.val_frames.start : meta.val_frames.stop]
    rendered_mouth, truth_mouth, held_out_mouth = (measure_mouth(clip) for clip in (rendered, truth, np.stack(held_out_frames)))
    with torch.inference_mode():
        psnr, ssim = _psnr(rendered, truth), _ssim(rendered, truth)
    metrics = {
        "run": str(run),
        "videos": {"held_out": str(held_out.path), "val": str(val.path), "preview": str(Path(run) / "preview.mp4")},
        "val": {
            "frames": len(val_frames),
            "psnr_db": psnr,
            "ssim": ssim,
            "mouth_correlation": _correlation(rendered_mouth, true_mouth),
            "mouth_correlation_ground_truth_frames": _correlation(truth_mouth, true_mouth),
            "faces_found": float(np.isfinite(rendered_mouth).mean()),
        },
        "held_out": {
            "text": HELD_OUT_TEXT,
            "frames": len(held_out_frames),
            "mouth_correlation": _correlation(held_out_mouth, generated_mouth),
            "faces_found": float(np.isfinite(held_out_mouth).mean()),
        },
        "render_fps": (held_out.frames + val.frames) / (held_out.seconds + val.seconds),
        "seconds": {"train": trained - started, "total": time.perf_counter() - started},
        "settings": {"spec": str(SPEC), "fast": fast, "size": meta.width, "train_frames": len(meta.train_frames), "stages": loaded.record["stages"]},
    }
    (out / METRICS).write_text(json.dumps(metrics, indent=2) + "\n")
    print_metrics(metrics)
    return metrics


def _val_audio(dataset: Any, frames: range, fps: Any) -> tuple[np.ndarray, Any]:
    """The dataset's audio under `frames`, exactly len(frames) video frames long, and its timeline."""
    from thkit.core.timebase import Timeline, as_rate
    from thkit.data.layout import SAMPLE_RATE

    audio = dataset.audio()
    rate = as_rate(fps)
    start = frames.start * SAMPLE_RATE * rate.denominator // rate.numerator
    length = -(-len(frames) * SAMPLE_RATE * rate.denominator // rate.numerator)  # ceil: floor(length * fps / rate) == len(frames)
    clip = np.zeros(length, dtype=np.float32)
    piece = audio[start : start + length]
    clip[: len(piece)] = piece
    return clip, Timeline(length, SAMPLE_RATE)


def measure_mouth(frames: np.ndarray) -> np.ndarray:
    """[F] mouth opening in RGB frames [F, H, W, 3]: dlib's 68 landmarks, tracked as preprocessing does,
    inner-lip gap over face height (`thkit.data.preprocess.signals.mouth` on the 2D points); NaN
    where no face is found (not interpolated: correlations are taken over the frames measured)."""
    import cv2

    from thkit.data.preprocess.landmarks import track_landmarks
    from thkit.data.preprocess.signals import mouth

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # several faces: the tracker keeps the first one
        landmarks = track_landmarks((cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames), len(frames))
    return mouth(landmarks).astype(np.float64)


def _generator_mouth(audio: np.ndarray, text: str, n_frames: int, fps: float) -> np.ndarray:
    """The synthetic generator's mouth opening for speech `audio` saying `text`, per video frame."""
    from thkit.data.synth.motion import frame_times
    from thkit.data.synth.portrait import build_head, mouth_opening
    from thkit.data.synth.speech import Aligner
    from thkit.data.synth.visemes import mouth_parameters

    phones = Aligner().align(audio, text)
    shape = mouth_parameters(phones, frame_times(n_frames, fps))
    expression = np.column_stack([shape, np.zeros(n_frames)])  # no blink
    return mouth_opening(build_head().pose_vertices(expression, first=68)).astype(np.float64)


def _correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation over the frames where both are finite; None when it is undefined."""
    keep = np.isfinite(a) & np.isfinite(b)
    if keep.sum() < 3 or np.std(a[keep]) == 0 or np.std(b[keep]) == 0:
        return None
    return float(np.corrcoef(a[keep], b[keep])[0, 1])


def _psnr(rendered: np.ndarray, truth: np.ndarray) -> float:
    """PSNR in dB over every pixel of every frame (uint8 frames, peak 1 after scaling)."""
    mse = float(np.mean((rendered.astype(np.float64) / 255 - truth.astype(np.float64) / 255) ** 2))
    return 10 * math.log10(1 / mse) if mse > 0 else math.inf


def _ssim(rendered: np.ndarray, truth: np.ndarray) -> float:
    """Mean SSIM of whole frames (the trainer's Gaussian-window SSIM)."""
    import torch

    from thkit.train.losses import structural_similarity

    def tensor(frames: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(255)

    return float(structural_similarity(tensor(rendered), tensor(truth)).mean())


def print_metrics(metrics: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    def number(value: float | None, digits: int = 3) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    val, held_out = metrics["val"], metrics["held_out"]
    table = Table(title="thkit demo: the synthetic subject" + (" (fast: numbers mean nothing)" if metrics["settings"]["fast"] else ""))
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("on")
    table.add_row("PSNR", f"{number(val['psnr_db'], 2)} dB", f"{val['frames']} validation frames vs ground truth, whole frame")
    table.add_row("SSIM", number(val["ssim"]), "the same frames")
    table.add_row(
        "mouth correlation", number(val["mouth_correlation"]), f"rendered validation frames (dlib, face in {val['faces_found']:.0%}) vs ground-truth mouth"
    )
    table.add_row("  measurement ceiling", number(val["mouth_correlation_ground_truth_frames"]), "ground-truth frames (dlib) vs ground-truth mouth")
    table.add_row(
        "mouth correlation",
        number(held_out["mouth_correlation"]),
        f"held-out sentence, {held_out['frames']} frames (dlib, face in {held_out['faces_found']:.0%}) vs the generator's mouth",
    )
    table.add_row("render speed", f"{metrics['render_fps']:.2f} frames/s", f"{metrics['settings']['size']} px, whole frames with audio muxed")
    table.add_row("time", f"{metrics['seconds']['total']:.0f} s", f"of which training {metrics['seconds']['train']:.0f} s")
    console = Console()
    console.print(table)
    for name, path in metrics["videos"].items():
        console.print(f"{name}: {path}")
    console.print(f"metrics: {Path(metrics['run']) / METRICS}")
