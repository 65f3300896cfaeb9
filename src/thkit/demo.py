"""`thkit demo`: the whole path on the synthetic subject, on a CPU, with numbers at the end.

1. Train a demo spec (default `examples/demo.yaml`, DAMC's structure at CPU size;
   `examples/landmark-demo.yaml` is the decoupled landmark path's) into `out/` (a run folder; a run
   of the demo already there is resumed, a finished one is reused as it is).
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
   frames themselves is reported beside it: the ceiling of the measurement (`thkit.demo_measures`).
   Everything also goes to `out/metrics.json`.
5. For a spec that predicts 3D landmarks (a `landmark-transformer`), also measure the two halves
   apart: the validation frames drawn from the tracked landmarks instead of the predicted ones
   (`out/val_tracked.mp4`, measured as above: the renderer's own quality), and the predicted
   landmarks against the tracked ones (`thkit.demo_landmarks`).

`fast=True` shrinks everything (3 s of 64 px subject, tiny networks by node type, a few steps per
stage; `fast_overrides`) to check the path end to end in about a minute; its numbers mean nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from thkit.core.errors import ThkitError
from thkit.core.timebase import Timeline
from thkit.data.layout import SAMPLE_RATE, Dataset
from thkit.demo_landmarks import landmark_metrics, predicted_landmarks
from thkit.demo_measures import generator_mouth, measure_mouth, psnr, ssim
from thkit.eval.lipsync import correlation
from thkit.render.drive import Drive

if TYPE_CHECKING:
    from thkit.render.pipeline import LoadedRun, RenderResult

SPEC = Path(__file__).resolve().parents[2] / "examples" / "demo.yaml"
HELD_OUT_VIDEO, VAL_VIDEO, VAL_TRACKED_VIDEO, METRICS = "held_out.mp4", "val.mp4", "val_tracked.mp4", "metrics.json"

# The fast path's --set overrides: a tiny subject; for each node type a demo spec uses, tiny sizes
# (nodes of other types keep theirs); FAST_STEPS steps per stage, more for a stage named `head`.
FAST_DATA = ("data.synthetic.seconds=3", "data.synthetic.size=64")
FAST_PARAMS: dict[str, dict[str, Any]] = {
    "sync": {"dim": 16, "mouth_height": 16, "mouth_width": 32},
    "csfm": {"dim": 8, "heads": 2},
    "triplane-nerf": {"resolutions": [16, 32], "hidden": 16, "occupancy": 16},
    "torso-2d": {"resolutions": [16, 32], "hidden": 16},
    "landmark-transformer": {"dim": 16, "heads": 2},
    "landmark-nerf": {"resolutions": [16, 32], "hidden": 16, "landmark_dim": 8, "occupancy": 16, "coarse_samples": 8, "fine_samples": 4},
    "styleunet-torso": {"resolution": 32, "levels": 2, "channels": 4, "style_dim": 16, "hidden": 16},
}
FAST_STEPS = {"head": 8}
FAST_OTHER_STEPS = 2
# fast_overrides(SPEC) spelled out (a test keeps them equal): other tests train the demo spec with them.
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


def fast_overrides(spec: Path) -> tuple[str, ...]:
    """The --set overrides that shrink `spec` to the fast path (see FAST_PARAMS)."""
    from thkit.core.graph import load_graph

    graph = load_graph(spec)
    overrides = list(FAST_DATA)
    for name, node in graph.nodes.items():
        overrides += [f"nodes.{name}.params.{key}={json.dumps(value)}" for key, value in FAST_PARAMS.get(node.spec.type, {}).items()]
    stages = graph.spec.train.stages if graph.spec.train is not None else []
    overrides += [f"train.stages.{index}.steps={FAST_STEPS.get(stage.name, FAST_OTHER_STEPS)}" for index, stage in enumerate(stages)]
    return tuple(overrides)


@dataclass(frozen=True)
class Clip:
    """What a rendered clip is made of: the audio, its timeline and what drives each frame."""

    audio: np.ndarray
    timeline: Timeline
    drive: Drive


def run_demo(out: Path = Path("runs/demo"), *, spec: Path = SPEC, fast: bool = False) -> dict[str, Any]:
    """Train, render and measure the demo spec `spec` into `out` (see the module docstring); returns the metrics."""
    from thkit.train import TrainOptions, train

    spec, out = Path(spec), Path(out)
    if not spec.is_file():
        hint = "thkit demo runs from a source checkout of thkit, which holds examples/" if spec == SPEC else "give the path of a spec file"
        raise ThkitError(f"the demo spec {spec} is missing", hint=hint)
    started = time.perf_counter()
    options = TrainOptions(rays=256, preview_frames=2, render_chunk=4096) if fast else TrainOptions()
    run = train(spec, out, overrides=fast_overrides(spec) if fast else (), resume=True, options=options)
    trained = time.perf_counter()
    metrics = measure_run(run, out)
    metrics["seconds"] = {"train": trained - started, "total": time.perf_counter() - started}
    metrics["settings"] = {"spec": str(spec), "fast": fast, **metrics.pop("settings")}
    (out / METRICS).write_text(json.dumps(metrics, indent=2) + "\n")
    print_metrics(metrics)
    return metrics


def measure_run(run: Path, out: Path) -> dict[str, Any]:
    """Render the held-out sentence and the validation clip of the trained run `run` into `out` and
    measure them (steps 2-5 of the module docstring); returns the metrics (no timings of training)."""
    from thkit.render.pipeline import load_run

    loaded = load_run(run)
    held_out, val = held_out_clip(loaded), val_clip(loaded)
    generated = held_out_mouth(loaded, held_out)
    held_out_result, held_out_metrics = _held_out(loaded, held_out, generated, out / HELD_OUT_VIDEO)
    val_result, val_metrics = _validation(loaded, val, out / VAL_VIDEO)
    metrics: dict[str, Any] = {
        "run": str(run),
        "videos": {"held_out": str(held_out_result.path), "val": str(val_result.path), "preview": str(Path(run) / "preview.mp4")},
        "val": val_metrics,
        "held_out": held_out_metrics,
    }
    predicted = predicted_landmarks(loaded.graph)
    if predicted:
        tracked = {str(ref): "$landmarks" for ref in predicted}
        tracked_result, metrics["val_tracked"] = _validation(loaded, val, out / VAL_TRACKED_VIDEO, feed=tracked)
        metrics["videos"]["val_tracked"] = str(tracked_result.path)
        metrics["landmarks"] = landmark_metrics(loaded, predicted[0], val, held_out, generated)
    metrics["render_fps"] = (held_out_result.frames + val_result.frames) / (held_out_result.seconds + val_result.seconds)
    meta = loaded.dataset.meta
    metrics["settings"] = {"size": meta.width, "train_frames": len(meta.train_frames), "stages": loaded.record["stages"]}
    return metrics


def held_out_clip(loaded: LoadedRun) -> Clip:
    """HELD_OUT_TEXT spoken by the offline voice, poses and blinks replayed from training."""
    from thkit.audio.speech import load_speech
    from thkit.data.synth import HELD_OUT_TEXT

    meta = loaded.dataset.meta
    audio, timeline = load_speech(text=HELD_OUT_TEXT, sample_rate=loaded.graph.context.sample_rate)
    return Clip(audio, timeline, Drive.replay(timeline.frames(loaded.graph.context.video_fps), meta.train_frames, meta.train_frames))


def held_out_mouth(loaded: LoadedRun, clip: Clip) -> np.ndarray:
    """The synthetic generator's mouth opening for the held-out sentence, per video frame."""
    from thkit.data.synth import HELD_OUT_TEXT

    return generator_mouth(clip.audio, HELD_OUT_TEXT, clip.drive.n_frames, float(loaded.graph.context.video_fps))


def val_clip(loaded: LoadedRun) -> Clip:
    """The validation frames with their own audio, poses and blinks."""
    dataset, frames = loaded.dataset, loaded.dataset.meta.val_frames
    audio, timeline = audio_under(dataset, frames, loaded.graph.context.video_fps)
    return Clip(audio, timeline, Drive.replay(len(frames), frames, dataset.meta.train_frames))


def _held_out(loaded: LoadedRun, clip: Clip, generated: np.ndarray, path: Path) -> tuple[RenderResult, dict[str, Any]]:
    """The held-out sentence rendered; its mouth (dlib) against the generator's."""
    from thkit.data.synth import HELD_OUT_TEXT
    from thkit.render.pipeline import render_audio

    frames: list[np.ndarray] = []
    result = render_audio(loaded, clip.audio, clip.timeline, clip.drive, path, on_frame=lambda _, rgb: frames.append(rgb))
    opening = measure_mouth(np.stack(frames))
    return result, {
        "text": HELD_OUT_TEXT,
        "frames": len(frames),
        "mouth_correlation": correlation(opening, generated),
        "faces_found": float(np.isfinite(opening).mean()),
    }


def _validation(loaded: LoadedRun, clip: Clip, path: Path, *, feed: Mapping[str, str] | None = None) -> tuple[RenderResult, dict[str, Any]]:
    """The validation clip rendered (with `feed`, as `render_audio` takes it), measured against the truth."""
    from thkit.render.pipeline import render_audio

    dataset, frames = loaded.dataset, loaded.dataset.meta.val_frames
    drawn: list[np.ndarray] = []
    result = render_audio(loaded, clip.audio, clip.timeline, clip.drive, path, on_frame=lambda _, rgb: drawn.append(rgb), feed=feed)
    rendered = np.stack(drawn)
    truth = np.stack([dataset.frame(index) for index in frames])
    true_mouth = np.asarray(dataset.array("mouth"), dtype=np.float64)[frames.start : frames.stop]
    opening = measure_mouth(rendered)
    return result, {
        "frames": len(frames),
        "psnr_db": psnr(rendered, truth),
        "ssim": ssim(rendered, truth),
        "mouth_correlation": correlation(opening, true_mouth),
        "mouth_correlation_ground_truth_frames": correlation(measure_mouth(truth), true_mouth),
        "faces_found": float(np.isfinite(opening).mean()),
    }


def audio_under(dataset: Dataset, frames: range, fps: Fraction) -> tuple[np.ndarray, Timeline]:
    """The dataset's audio under `frames` (from the first frame's start), exactly len(frames) video frames
    long, with what it says when the dataset knows (as a transcript beside an --audio file would give)."""
    start = Timeline(0, SAMPLE_RATE).sample_span(frames.start, fps)[0]
    # The fewest samples holding len(frames) whole frames: ceil(len * rate / fps).
    length = -(-len(frames) * SAMPLE_RATE * fps.denominator // fps.numerator)
    clip = np.zeros(length, dtype=np.float32)
    piece = dataset.audio()[start : start + length]
    clip[: len(piece)] = piece
    return clip, Timeline(length, SAMPLE_RATE, text=spoken_words(dataset, start / SAMPLE_RATE, (start + length) / SAMPLE_RATE))


def spoken_words(dataset: Dataset, start: float, stop: float) -> str | None:
    """The words said between `start` and `stop` seconds (each word one of whose phones starts there), from
    a synthetic subject's `ground_truth/speech.json`; None for datasets without one."""
    record = dataset.root / "ground_truth" / "speech.json"
    if not record.is_file():
        return None
    words: list[tuple[str, list[float]]] = []  # each spoken word and the start times of its phones
    previous = ""
    for phone in json.loads(record.read_text())["phones"]:
        word = phone["word"]
        if word and word != previous:
            words.append((word, []))
        if word:
            words[-1][1].append(phone["start"])
        previous = word
    said = [word for word, starts in words if any(start <= time < stop for time in starts)]
    return " ".join(said) or None


def print_metrics(metrics: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    val, held_out = metrics["val"], metrics["held_out"]
    table = Table(title="thkit demo: the synthetic subject" + (" (fast: numbers mean nothing)" if metrics["settings"]["fast"] else ""))
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("on")
    drawn_from = ", drawn from predicted landmarks" if "landmarks" in metrics else ""
    table.add_row("PSNR", f"{_number(val['psnr_db'], 2)} dB", f"{val['frames']} validation frames vs ground truth, whole frame{drawn_from}")
    table.add_row("SSIM", _number(val["ssim"]), "the same frames")
    table.add_row(
        "mouth correlation", _number(val["mouth_correlation"]), f"rendered validation frames (dlib, face in {val['faces_found']:.0%}) vs ground-truth mouth"
    )
    table.add_row("  measurement ceiling", _number(val["mouth_correlation_ground_truth_frames"]), "ground-truth frames (dlib) vs ground-truth mouth")
    table.add_row(
        "mouth correlation",
        _number(held_out["mouth_correlation"]),
        f"held-out sentence, {held_out['frames']} frames (dlib, face in {held_out['faces_found']:.0%}) vs the generator's mouth",
    )
    if "landmarks" in metrics:
        _landmark_rows(table, metrics)
    table.add_row("render speed", f"{metrics['render_fps']:.2f} frames/s", f"{metrics['settings']['size']} px, whole frames with audio muxed")
    table.add_row("time", f"{metrics['seconds']['total']:.0f} s", f"of which training {metrics['seconds']['train']:.0f} s")
    console = Console()
    console.print(table)
    for name, path in metrics["videos"].items():
        console.print(f"{name}: {path}")
    console.print(f"metrics: {Path(metrics['run']) / METRICS}")


def _landmark_rows(table: Any, metrics: dict[str, Any]) -> None:
    """The two halves of a landmark-driven spec (`thkit.demo_landmarks`)."""
    marks, tracked = metrics["landmarks"], metrics["val_tracked"]
    table.add_row(
        "landmark mouth error",
        f"{_number(marks['mouth_error_px'], 2)} px",
        f"{marks['node']}'s validation landmarks projected vs tracked 2D, points 48-67, at {metrics['settings']['size']} px "
        f"(neutral face {_number(marks['mouth_error_px_neutral'], 2)}, tracked 3D {_number(marks['mouth_error_px_tracked_3d'], 2)})",
    )
    table.add_row(
        "landmark mouth correlation",
        _number(marks["mouth_correlation"]),
        f"predicted landmarks' mouth opening vs ground-truth mouth, validation (amplitude x{_number(marks['mouth_amplitude_ratio'], 2)})",
    )
    table.add_row("landmark mouth correlation", _number(marks["held_out_mouth_correlation"]), "the same, held-out sentence vs the generator's mouth")
    table.add_row("PSNR, tracked landmarks", f"{_number(tracked['psnr_db'], 2)} dB", "validation frames drawn from the tracked landmarks")
    table.add_row("SSIM, tracked landmarks", _number(tracked["ssim"]), "the same frames")
    table.add_row(
        "mouth correlation, tracked landmarks", _number(tracked["mouth_correlation"]), f"the same frames (dlib, face in {tracked['faces_found']:.0%})"
    )


def _number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"
