"""`render_run`: a trained run folder and new audio (a file, or text spoken by the offline voice) -> mp4.

Steps:
1. Load the run (`thkit.train.run`): its resolved spec, validated into a graph, every node built
   and given the run's weights, in eval mode; the dataset it was trained on supplies the camera
   intrinsics, the background plate and the per-frame signals to replay.
2. Decode the audio at the graph's sample rate (any container, rate, channels and length) into a
   waveform and its `Timeline`; the video has `timeline.frames(fps)` frames.
3. Choose what drives each frame besides the audio (`thkit.render.drive`): the training frames'
   poses, blinks and other per-frame inputs replayed back and forth, or poses from a file.
4. Run the sequence nodes (encoders, fusions, conditioners) on the whole clip, without gradients,
   encoders through the feature cache (`$THKIT_CACHE`, as `thkit encode` uses): rendering the same
   audio twice encodes it once.
5. Draw every frame through the renderer contract (`thkit.core.pixels`): every pixel of the frame,
   renderers in graph order, a renderer input fed by another renderer getting its `rgba` at the same
   pixels; the last renderer's rgba is composited over the background plate. On a CPU, frames are
   drawn one per core side by side (`thkit.render.parallel`). Frames stream into the mp4 in order
   as they are drawn (`thkit.render.video`), with the audio muxed in.

A graph that reads `$frame` (the ground-truth video) cannot render new audio: there is no video for
it, and that is a user error.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from thkit.audio.cache import FeatureCache, cached_encode, default_cache_root
from thkit.audio.speech import load_speech
from thkit.core.align import pool_to_frames
from thkit.core.errors import ThkitError
from thkit.core.graph import Graph, Ref, load_graph
from thkit.core.pixels import PixelBatch
from thkit.core.ports import Landmarks
from thkit.core.timebase import Timeline
from thkit.data.layout import Dataset
from thkit.render.drive import REPLAYED, Drive, load_poses
from thkit.render.parallel import default_workers, frames_in_order
from thkit.render.video import AudioVideoWriter
from thkit.train import run as runs

SEQUENCE_KINDS = ("encoder", "fusion", "conditioning")
RAYS_PER_CALL = 65536  # pixels per renderer call: a whole 256 x 256 frame; bounds memory at larger sizes


@dataclass
class LoadedRun:
    """A trained run ready to render: its graph, modules with the run's weights, and its dataset."""

    root: Path
    graph: Graph
    modules: dict[str, nn.Module]
    dataset: Dataset
    record: dict[str, Any]
    device: torch.device

    @property
    def renderers(self) -> list[str]:
        return [name for name, node in self.graph.nodes.items() if node.spec.kind == "renderer"]

    @property
    def unfinished(self) -> list[str]:
        """Stages that have not run all their steps, as 'name done/steps'."""
        return [f"{s['name']} {s['done']}/{s['steps']}" for s in self.record.get("stages", []) if s["done"] < s["steps"]]


@dataclass(frozen=True)
class RenderResult:
    path: Path
    frames: int
    seconds: float  # wall time of drawing and encoding the frames (not loading or audio encoding)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")


def load_run(run: str | Path, device: str | None = None) -> LoadedRun:
    """The run folder `run`, loaded for rendering; ThkitError when it is not a trained run."""
    root = Path(run)
    folder = runs.RunFolder(root)
    if not root.is_dir() or not folder.is_run or not folder.path(runs.SPEC).is_file():
        raise ThkitError(
            f"{root}: not a thkit run folder (no {runs.RECORD} and {runs.SPEC})",
            hint="give the folder `thkit build SPEC` trained into (default runs/<spec name>)",
        )
    record = folder.read_record()
    if not folder.path(runs.WEIGHTS).is_file() or not any(stage.get("done", 0) > 0 for stage in record.get("stages", [])):
        raise ThkitError(
            f"{root}: the run has not been trained yet (no training step finished)",
            hint=f"train it first: thkit build SPEC --out {root} --resume",
        )
    graph = load_graph(folder.path(runs.SPEC))
    if graph.spec.data.dataset is None:
        raise ThkitError(f"{folder.path(runs.SPEC)}: its data section names no dataset folder", hint="train the run again with this thkit")
    dataset = Dataset(graph.spec.data.dataset)
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    modules = graph.build_modules()
    folder.load_weights(modules)
    modules = {name: module.to(target).eval().requires_grad_(False) for name, module in modules.items()}
    return LoadedRun(root, graph, modules, dataset, record, target)


def render_run(
    run: str | Path,
    out: str | Path,
    *,
    audio_path: str | Path | None = None,
    text: str | None = None,
    poses: str | Path | None = None,
    edits: Mapping[str, float | str] | None = None,
    progress: bool = True,
) -> Path:
    """Render the trained run `run` saying `audio_path` (or `text`, spoken offline) into the mp4 `out`.

    Head poses and blinks replay the training frames back and forth (`thkit.render.drive`), or poses
    come from `poses`, a .npy of [frames, 4, 4] camera-to-world matrices. `edits` (`thkit.render.edits`,
    e.g. {"mouth_scale": 1.3}) change the predicted landmarks before they are drawn. Returns `out`.
    """
    if (audio_path is None) == (text is None):
        raise ThkitError('give exactly one of --audio FILE or --text "..."')
    loaded = load_run(run)
    if loaded.unfinished:
        warnings.warn(f"{loaded.root}: rendering a run whose training is unfinished ({', '.join(loaded.unfinished)})", stacklevel=2)
    audio, timeline = load_speech(audio_path, text=text, sample_rate=loaded.graph.context.sample_rate)
    n_frames = timeline.frames(loaded.graph.context.video_fps)
    if n_frames < 1:
        raise ThkitError(f"{audio_path or 'the text'}: the audio is shorter than one video frame", hint="give at least 0.04 s of speech")
    meta = loaded.dataset.meta
    drive = Drive.replay(n_frames, meta.train_frames, meta.train_frames, None if poses is None else load_poses(poses, n_frames))
    return render_audio(loaded, audio, timeline, drive, out, edits=edits, progress=progress).path


def render_audio(
    loaded: LoadedRun, audio: np.ndarray, timeline: Timeline, drive: Drive, out: str | Path, *, progress: bool = True,
    on_frame: Callable[[int, np.ndarray], None] | None = None, edits: Mapping[str, float | str] | None = None,
    feed: Mapping[str, str] | None = None, workers: int | None = None,
) -> RenderResult:
    """Draw `drive.n_frames` frames of `loaded` saying `audio` into the mp4 `out` (see the module docstring).

    `on_frame(index, rgb)` sees every frame as it is written (the demo measures them); `edits` and
    `feed` change what the frames are drawn from (`frame_values`). `workers` frames are drawn at a
    time (`thkit.render.parallel`; default: one per torch thread on a CPU, one on a GPU).
    """
    per_frame = frame_values(loaded, audio, timeline, drive, edits=edits, feed=feed)
    painter = _Painter(loaded, per_frame, drive)
    meta, n_frames, fps = loaded.dataset.meta, drive.n_frames, loaded.graph.context.video_fps
    with torch.inference_mode():
        started = time.perf_counter()
        with (
            AudioVideoWriter(out, width=meta.width, height=meta.height, fps=fps, audio=audio, sample_rate=timeline.sample_rate) as writer,
            _Progress(progress, n_frames, Path(out).name) as bar,
        ):
            chosen = default_workers(loaded.device) if workers is None else workers
            for index, rgb in enumerate(frames_in_order(painter.frame, n_frames, chosen)):
                writer.add(rgb)
                if on_frame is not None:
                    on_frame(index, rgb)
                bar.advance()
        seconds = time.perf_counter() - started
    return RenderResult(Path(out), n_frames, seconds)


def frame_values(
    loaded: LoadedRun, audio: np.ndarray, timeline: Timeline, drive: Drive, *,
    edits: Mapping[str, float | str] | None = None, feed: Mapping[str, str] | None = None,
) -> dict[Ref, Tensor]:
    """What each of `drive.n_frames` frames is drawn from, one row per frame: the graph inputs the drive
    replays and every sequence node's outputs (steps 3 and 4 of the module docstring).

    `feed` replaces node outputs by graph inputs, as a training stage's `feed:` does, e.g.
    {"a2l.landmarks": "$landmarks"} draws the replayed frames' tracked landmarks instead of the
    predicted ones; `edits` then change the 3D landmarks that conditioning nodes output
    (`thkit.render.edits`).
    """
    from thkit.render.edits import check_edits

    graph = loaded.graph
    _check_inputs(graph)
    edits = check_edits(edits or {})
    edited = _edited_landmarks(graph) if edits else []
    feeds = _feeds(graph, feed or {})
    n_frames = drive.n_frames
    if timeline.frames(graph.context.video_fps) != n_frames:
        raise ValueError(f"the drive has {n_frames} frames, the audio {timeline.frames(graph.context.video_fps)}")
    inputs = _graph_inputs(loaded.dataset, audio, drive, loaded.device)
    with torch.inference_mode():
        sequences = {name: module for name, module in loaded.modules.items() if graph.nodes[name].spec.kind in SEQUENCE_KINDS}
        values: dict[Ref, Tensor] = {Ref(None, name): tensor for name, tensor in inputs.items()}
        values.update(cached_encode(graph, sequences, inputs, timeline, FeatureCache(default_cache_root())))
        values.update({target: values[source] for target, source in feeds.items()})
        for ref in edited:
            values[ref] = _apply_edits(loaded, ref, values[ref], edits)
        return {ref: _on_frames(graph, ref, tensor, n_frames) for ref, tensor in values.items()}


def _feeds(graph: Graph, feed: Mapping[str, str]) -> dict[Ref, Ref]:
    """`feed` as Refs: each target a node's output, each source a replayed graph input."""
    refs: dict[Ref, Ref] = {}
    for target_text, source_text in feed.items():
        target, source = Ref.parse(target_text), Ref.parse(source_text)
        if target is None or target.node not in graph.nodes or target.port not in graph.nodes[target.node].outputs:
            raise ThkitError(f"feed {target_text}: not a node output of spec '{graph.spec.name}'", hint="name it as node.port, e.g. a2l.landmarks")
        if source is None or source.node is not None or source.port not in REPLAYED:
            inputs = ", ".join(f"${name}" for name in REPLAYED)
            raise ThkitError(f"feed {target_text}: {source_text} is not a replayed input", hint=f"feed one of {inputs}")
        refs[target] = source
    return refs


def _check_inputs(graph: Graph) -> None:
    readers = [name for name, node in graph.nodes.items() if Ref(None, "frame") in node.inputs.values()]
    if readers:
        raise ThkitError(
            f"{'nodes' if len(readers) > 1 else 'node'} {', '.join(readers)} of spec '{graph.spec.name}' "
            f"{'read' if len(readers) > 1 else 'reads'} $frame, the ground-truth video, which new audio does not have",
            hint="render from a spec whose nodes take their inputs from $audio, $pose and other nodes",
        )


def _edited_landmarks(graph: Graph) -> list[Ref]:
    """The outputs edits act on: 3D landmarks that conditioning nodes predict."""
    refs = [
        Ref(name, port_name)
        for name, node in graph.nodes.items()
        if node.spec.kind == "conditioning"
        for port_name, port in node.outputs.items()
        if isinstance(port, Landmarks) and port.dims == 3
    ]
    if not refs:
        raise ThkitError(
            f"--edit changes predicted landmarks, and spec '{graph.spec.name}' has no conditioning node that predicts 3D landmarks",
            hint="edits work on landmark-driven specs, e.g. examples/landmark-demo.yaml",
        )
    return refs


def _apply_edits(loaded: LoadedRun, ref: Ref, landmarks: Tensor, edits: Mapping[str, float | str]) -> Tensor:
    """`landmarks` [frames, 68, 3] edited relative to the subject's neutral shape: the predicting module's
    `neutral` buffer when it keeps one, else the median of the training frames' tracked landmarks."""
    from thkit.render.edits import apply_edits

    neutral = getattr(loaded.modules[ref.node], "neutral", None)  # type: ignore[index]
    if not isinstance(neutral, Tensor) or not neutral.abs().sum() > 0:
        tracked = np.asarray(loaded.dataset.array("landmarks3d"), dtype=np.float32)[loaded.dataset.meta.train_frames.start : loaded.dataset.meta.train_frames.stop]
        neutral = torch.from_numpy(np.median(tracked, axis=0))
    return apply_edits(landmarks, neutral.to(landmarks), edits)


def _graph_inputs(dataset: Dataset, audio: np.ndarray, drive: Drive, device: torch.device) -> dict[str, Tensor]:
    """`$audio` and the replayed per-frame inputs of the clip, first axis = output frames."""
    inputs = {"audio": torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))}
    for name, array in REPLAYED.items():
        rows = np.asarray(dataset.array(array), dtype=np.float32)[drive.rows]
        if name == "pose" and drive.poses is not None:
            rows = drive.poses.astype(np.float32)
        inputs[name] = torch.from_numpy(rows.reshape(drive.n_frames, -1) if rows.ndim == 1 else rows)
    return {name: tensor.to(device) for name, tensor in inputs.items()}


def _on_frames(graph: Graph, ref: Ref, tensor: Tensor, n_frames: int) -> Tensor:
    """A sequence at the video's rate, one row per output frame (other rates pooled onto frames)."""
    port = graph.port(ref)
    rate = getattr(port, "fps", None)
    if rate is None or rate == graph.context.video_fps:
        return tensor
    flat = pool_to_frames(tensor.reshape(tensor.shape[0], -1).float(), rate, graph.context.video_fps, n_frames)
    return flat.reshape(n_frames, *tensor.shape[1:])


class _Painter:
    """Draws whole frames: renderers in graph order over every pixel, the last one over the plate."""

    def __init__(self, loaded: LoadedRun, per_frame: Mapping[Ref, Tensor], drive: Drive) -> None:
        self.loaded = loaded
        self.per_frame = per_frame
        self.drive = drive
        meta = loaded.dataset.meta
        self.height, self.width = meta.height, meta.width
        device = loaded.device
        self.intrinsics = torch.tensor([meta.intrinsics.focal, meta.intrinsics.cx, meta.intrinsics.cy], dtype=torch.float32, device=device)
        rows, cols = torch.meshgrid(torch.arange(self.height), torch.arange(self.width), indexing="ij")
        self.pixels = torch.stack([cols.flatten() + 0.5, rows.flatten() + 0.5], dim=-1).float().to(device)
        self.plate = torch.from_numpy(np.array(loaded.dataset.background)).float().div(255).reshape(-1, 3).to(device)
        self.frame_ids = torch.from_numpy(drive.frame_ids).to(device)
        self.names = loaded.renderers
        if not self.names:
            raise ThkitError(f"spec '{loaded.graph.spec.name}' has no renderer node, so it draws no frames", hint="add a renderer node to the spec")

    def frame(self, index: int) -> np.ndarray:
        """Output frame `index` as uint8 [H, W, 3]."""
        pose = self.per_frame[Ref(None, "pose")][index : index + 1]
        colours = []
        for start in range(0, self.pixels.shape[0], RAYS_PER_CALL):
            pixels = self.pixels[start : start + RAYS_PER_CALL]
            batch = PixelBatch(
                pixels, torch.zeros(pixels.shape[0], dtype=torch.long, device=pixels.device), self.frame_ids[index : index + 1], pose,
                self.intrinsics, self.height, self.width,
            )  # fmt: skip
            rgba = self._render(batch, index)
            plate = self.plate[start : start + RAYS_PER_CALL]
            colours.append(rgba[:, :3] + (1 - rgba[:, 3:]) * plate)
        image = torch.cat(colours).reshape(self.height, self.width, 3).clamp(0, 1)
        return (image * 255).round().to(torch.uint8).cpu().numpy()

    def _render(self, batch: PixelBatch, index: int) -> Tensor:
        graph = self.loaded.graph
        drawn: dict[str, Tensor] = {}
        for name in self.names:
            conditions = {}
            for input_name, ref in graph.nodes[name].inputs.items():
                conditions[input_name] = drawn[ref.node] if ref.node in drawn else self.per_frame[ref][index : index + 1]
            drawn[name] = self.loaded.modules[name](batch, conditions)["rgba"]
        return drawn[self.names[-1]]


class _Progress:
    """A rich progress bar on stderr with frames per second (nothing when disabled)."""

    def __init__(self, enabled: bool, total: int, label: str) -> None:
        self.enabled, self.total, self.label = enabled, total, label
        self.bar: Any = None
        self.task: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn(f"rendering {self.label}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]} frames/s"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self.bar.start()
            self.task = self.bar.add_task("render", total=self.total, rate="-")
            self.started = time.perf_counter()
        return self

    def advance(self) -> None:
        if self.bar is not None:
            done = self.bar.tasks[0].completed + 1
            rate = done / max(time.perf_counter() - self.started, 1e-9)
            self.bar.update(self.task, completed=done, rate=f"{rate:.2f}")

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

