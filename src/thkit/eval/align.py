"""Load what is measured and pair its frames by time, so that no metric ever compares the wrong frames.

A `Clip` is frames at a frame rate, with the audio heard under them (when there is any), starting
together: frame i shows the time [i / fps, (i + 1) / fps) and audio sample k plays at k / sample_rate.

The truth is one of three things:
- an mp4 (any video FFmpeg reads): all its frames, and its audio track when it has one;
- a dataset folder (`thkit.data.layout`): its validation split or all its frames (`split`; by
  default whichever lasts as long as the prediction), with the dataset's audio under them;
- a run folder (`thkit.train.run`): its dataset's validation split, the frames it never trained on
  (or, asked for with `split="all"`, every frame of its dataset).

`align` pairs the two clips by time: both are sampled at the lower of their two frame rates, at the
centre time of each of its frames, each clip giving the frame it shows at that moment (no frame is
interpolated: a metric always sees real frames). Clips that last as long as each other (within
`LENGTH_SLACK_FRAMES`, which absorbs the encoders' rounding of a clip to whole frames) are measured
over their common length; clips of different lengths most likely show different moments (a render
of the validation split against the whole video), so they are refused unless `trim=True` asks to
compare their common start. Different frame sizes are refused unless `resize=True`, which scales the
prediction to the truth's size (area interpolation): scaling changes PSNR, so it is never silent.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np
from jaxtyping import Float, Int, UInt8

from thkit.core.errors import ThkitError
from thkit.core.timebase import Timeline, format_rate, window_indices
from thkit.data.layout import SAMPLE_RATE, Dataset

LENGTH_SLACK_FRAMES = 2  # clips may differ by this many frames (at the lower rate) and still be one clip
Split = Literal["auto", "val", "all"]


@dataclass(frozen=True)
class Clip:
    """Frames at `fps` and, when known, the audio under them from the first frame's start."""

    frames: UInt8[np.ndarray, "frames height width 3"]
    fps: Fraction
    source: str  # how messages name it: a path, or a dataset and its frame range
    audio: Float[np.ndarray, "samples"] | None = None
    sample_rate: int = SAMPLE_RATE

    @property
    def seconds(self) -> Fraction:
        return Fraction(self.frames.shape[0]) / self.fps

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return int(self.frames.shape[1]), int(self.frames.shape[2])


@dataclass(frozen=True)
class Pair:
    """Two clips' frames paired by time: aligned frame k of both shows the time (k + 1/2) / fps."""

    pred: UInt8[np.ndarray, "frames height width 3"]
    truth: UInt8[np.ndarray, "frames height width 3"]
    fps: Fraction
    pred_index: Int[np.ndarray, "frames"]  # the prediction's own frame number of each aligned frame
    truth_index: Int[np.ndarray, "frames"]
    audio: Float[np.ndarray, "samples"] | None  # the prediction's audio, else the truth's (see `align`)
    sample_rate: int
    notes: tuple[str, ...] = ()  # what alignment did beyond pairing equal frames (resampled, trimmed, resized)

    @property
    def n_frames(self) -> int:
        return int(self.pred.shape[0])


def video_clip(path: str | Path, sample_rate: int = SAMPLE_RATE) -> Clip:
    """Every frame of a video file and its audio track (None when it has none); ThkitError when unreadable."""
    import av

    from thkit.audio.decode import load_audio
    from thkit.render.video import read_video

    path = Path(path)
    hint = "give an mp4 (or any video FFmpeg reads) with at least one frame"
    if path.is_dir():
        raise ThkitError(f"{path}: is a folder, not a video file", hint=f"{hint}; to measure a run folder on new audio, add --drive FILE")
    if not path.is_file():
        raise ThkitError(f"{path}: no such file", hint=hint)
    try:
        with av.open(str(path)) as container:
            has_video, has_audio = bool(container.streams.video), bool(container.streams.audio)
        if not has_video:
            raise ThkitError(f"{path}: has no video stream", hint=hint)
        frames, fps = read_video(path)
    except (av.error.FFmpegError, ValueError) as error:  # ValueError: np.stack of no frames
        raise ThkitError(f"{path}: not a readable video ({error})", hint=hint) from None
    audio = load_audio(path, sample_rate) if has_audio else None
    return Clip(frames, fps, str(path), audio, sample_rate)


def dataset_clip(dataset: Dataset, frames: range) -> Clip:
    """Frames `frames` of a dataset and the dataset's audio under them (16 kHz)."""
    meta = dataset.meta
    if len(frames) == 0:
        raise ThkitError(f"{dataset.root}: no frames to compare with (an empty split)", hint="use --split all, or a longer dataset")
    timeline = Timeline(0, SAMPLE_RATE)
    start, stop = timeline.sample_span(frames.start, meta.fps)[0], timeline.sample_span(frames.stop - 1, meta.fps)[1]
    images = np.stack([dataset.frame(index) for index in frames])
    audio = np.zeros(stop - start, dtype=np.float32)  # a dataset's audio covers its frames exactly; pad if not
    piece = dataset.audio()[start:stop]
    audio[: piece.shape[0]] = piece
    return Clip(images, meta.fps, f"{dataset.root} frames {frames.start}-{frames.stop - 1}", audio, SAMPLE_RATE)


def is_run(path: Path) -> bool:
    from thkit.train.run import RECORD

    return path.is_dir() and (path / RECORD).is_file()


def truth_clip(path: str | Path, pred: Clip, split: Split = "auto") -> Clip:
    """The ground truth at `path` (an mp4, a dataset folder or a run folder; see the module docstring)."""
    path = Path(path)
    if not path.is_dir():
        return video_clip(path, pred.sample_rate)
    if is_run(path):
        dataset = run_dataset(path)
        return dataset_clip(dataset, dataset.meta.val_frames if split == "auto" else dataset_frames(dataset, pred, split))
    if not (path / "dataset.json").is_file():
        raise ThkitError(
            f"{path}: a folder that is neither a thkit dataset (no dataset.json) nor a run folder (no run.json)",
            hint="give the ground-truth video (mp4), the dataset the prediction was rendered from, or the run folder",
        )
    dataset = Dataset(path)
    return dataset_clip(dataset, dataset_frames(dataset, pred, split))


def run_dataset(run: Path) -> Dataset:
    """The dataset a run folder was trained on, as its resolved spec names it."""
    from thkit.core.graph import load_graph
    from thkit.train.run import SPEC

    graph = load_graph(run / SPEC)
    if graph.spec.data.dataset is None:
        raise ThkitError(f"{run / SPEC}: its data section names no dataset folder", hint="train the run again with this thkit")
    return Dataset(graph.spec.data.dataset)


def dataset_frames(dataset: Dataset, pred: Clip, split: Split) -> range:
    """The dataset frames a prediction is compared with: `split`, or for "auto" the split lasting as long."""
    meta = dataset.meta
    splits = {"val": meta.val_frames, "all": range(meta.n_frames)}
    if split != "auto":
        return splits[split]
    lasting = [name for name, frames in splits.items() if _same_length(Fraction(len(frames)) / meta.fps, pred.seconds, min(meta.fps, pred.fps))]
    if not lasting:
        lengths = ", ".join(f"{name} {len(frames)} frames ({float(len(frames) / meta.fps):.2f} s)" for name, frames in splits.items())
        raise ThkitError(
            f"{pred.source} lasts {float(pred.seconds):.2f} s ({pred.frames.shape[0]} frames at {format_rate(pred.fps)} fps), "
            f"and no split of the dataset {dataset.root} lasts as long ({lengths})",
            hint="render the validation split (as `thkit demo` does) or the whole clip, or choose one with "
            "--split val|all and compare the common start with --trim",
        )
    return splits[lasting[0]]


def align(pred: Clip, truth: Clip, *, trim: bool = False, resize: bool = False) -> Pair:
    """Pair the frames of `pred` and `truth` by time (see the module docstring); ThkitError when they do not fit.

    The audio kept is the prediction's own (what drove it), else the truth's (a prediction rendered
    from the truth's audio, saved without sound).
    """
    rate = min(pred.fps, truth.fps)
    notes = []
    if not _same_length(pred.seconds, truth.seconds, rate):
        if not trim:
            raise ThkitError(
                f"{pred.source} lasts {float(pred.seconds):.2f} s ({pred.frames.shape[0]} frames at {format_rate(pred.fps)} fps) "
                f"but {truth.source} lasts {float(truth.seconds):.2f} s ({truth.frames.shape[0]} frames at {format_rate(truth.fps)} fps), "
                "so they probably do not show the same moments",
                hint="render the prediction from the truth's own audio, or pass --trim to compare their common start",
            )
        notes.append(f"trimmed to the common {float(min(pred.seconds, truth.seconds)):.2f} s")
    if pred.size != truth.size:
        if not resize:
            raise ThkitError(
                f"{pred.source} has {pred.size[1]} x {pred.size[0]} px frames but {truth.source} has {truth.size[1]} x {truth.size[0]} px",
                hint="render at the truth's size, or pass --resize to scale the prediction to it (which changes PSNR and SSIM)",
            )
        notes.append(f"prediction resized from {pred.size[1]} x {pred.size[0]} to {truth.size[1]} x {truth.size[0]} px")
    if pred.fps != truth.fps:
        notes.append(f"{format_rate(max(pred.fps, truth.fps))} fps resampled to {format_rate(rate)} fps by time")
    n_frames = int(min(pred.seconds, truth.seconds) * rate)
    if n_frames < 1:
        raise ThkitError(f"{pred.source} and {truth.source} share no whole frame", hint="give clips at least one frame long")
    pred_index = _frames_at(n_frames, rate, pred)
    truth_index = _frames_at(n_frames, rate, truth)
    pred_frames = pred.frames[pred_index]
    if pred.size != truth.size:
        pred_frames = _resize(pred_frames, truth.size)
    source = pred if pred.audio is not None else truth
    return Pair(pred_frames, truth.frames[truth_index], rate, pred_index, truth_index, source.audio, source.sample_rate, tuple(notes))


def _same_length(a: Fraction, b: Fraction, rate: Fraction) -> bool:
    return abs(a - b) <= LENGTH_SLACK_FRAMES / rate


def _frames_at(n_frames: int, rate: Fraction, clip: Clip) -> Int[np.ndarray, "frames"]:
    """The frame of `clip` shown at the centre time of each of n_frames frames at `rate` (exact rational time)."""
    return window_indices(n_frames, rate, clip.fps, clip.frames.shape[0], 1)[:, 0]


def _resize(frames: UInt8[np.ndarray, "frames h w 3"], size: tuple[int, int]) -> UInt8[np.ndarray, "frames height width 3"]:
    import cv2

    return np.stack([cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA) for frame in frames])
