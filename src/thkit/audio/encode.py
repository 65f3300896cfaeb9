"""`thkit encode`: run a spec's audio part on speech and save (and draw) every node's outputs."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from thkit.audio.cache import FeatureCache, cached_encode
from thkit.audio.speech import load_speech
from thkit.core.errors import ThkitError
from thkit.core.graph import Graph
from thkit.core.ports import Audio, Port
from thkit.core.timebase import Timeline, format_rate

AUDIO_KINDS = ("encoder", "fusion")

Outputs = dict[str, tuple[Port, np.ndarray]]  # 'node.port' -> (port, array)


@dataclass(frozen=True, eq=False)
class Encoding(Mapping[str, tuple[Port, np.ndarray]]):
    """Every output by 'node.port' (its port and array), with the speech it was computed from."""

    outputs: Outputs
    audio: np.ndarray  # [samples] float32 mono at timeline.sample_rate
    timeline: Timeline

    def __getitem__(self, key: str) -> tuple[Port, np.ndarray]:
        return self.outputs[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.outputs)

    def __len__(self) -> int:
        return len(self.outputs)


def encode_audio(
    graph: Graph, audio_path: str | Path | None = None, *, text: str | None = None, cache: FeatureCache | None = None
) -> Encoding:
    """Run the encoder and fusion nodes computed from `$audio` alone on a file, or on `text` spoken aloud.

    Encoder outputs are served from `cache` when it holds them (see `thkit.audio.cache`).
    """
    names = graph.computable(AUDIO_KINDS, given=["audio"])
    if not names:
        raise ThkitError(
            f"spec '{graph.spec.name}' has no encoder or fusion nodes that run on audio alone",
            hint="add an encoder node with inputs: {audio: $audio}",
        )
    audio, timeline = load_speech(audio_path, text=text, sample_rate=graph.context.sample_rate)
    modules = {name: module.eval() for name, module in graph.build_modules(names).items()}
    values = cached_encode(graph, modules, {"audio": torch.from_numpy(audio)}, timeline, cache)
    outputs = {str(ref): (graph.port(ref), tensor.cpu().numpy()) for ref, tensor in values.items()}
    return Encoding(outputs, audio, timeline)


def save_npz(results: Mapping[str, tuple[Port, np.ndarray]], path: str | Path) -> None:
    """One array per output, plus '<output>.port' (its port) and '<output>.fps' where it has a rate."""
    arrays: dict[str, np.ndarray] = {}
    for key, (port, array) in results.items():
        arrays[key] = array
        arrays[f"{key}.port"] = np.array(str(port))
        if hasattr(port, "fps"):
            arrays[f"{key}.fps"] = np.array(format_rate(port.fps))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial.npz")
    np.savez(partial, **arrays)
    partial.replace(path)  # atomic: a killed run never leaves a half-written file under the real name


def plot_encoding(
    results: Mapping[str, tuple[Port, np.ndarray]],
    audio: np.ndarray,
    sample_rate: int,
    path: str | Path,
    *,
    title: str | None = None,
) -> Path:
    """A PNG of the waveform on top and every output below it, all on one time axis in seconds.

    Sequences are drawn as images (time across, features up; landmark sequences flattened to
    n*dims rows); one-wide sequences and audio outputs as curves.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    seconds = audio.shape[0] / sample_rate
    figure = Figure(figsize=(12, 1.8 * (1 + len(results))), layout="constrained")
    FigureCanvasAgg(figure)
    # A narrow second column holds the colour bars, so every plot spans the same time axis.
    grid = figure.subplots(1 + len(results), 2, sharex="col", squeeze=False, gridspec_kw={"width_ratios": [80, 1]})
    axes, bars = grid[:, 0], grid[:, 1]
    _plot_wave(axes[0], audio, sample_rate)
    axes[0].set_ylabel("audio")
    if title:
        axes[0].set_title(title, loc="left")
    for axis, bar, (key, (port, array)) in zip(axes[1:], bars[1:], results.items()):
        if isinstance(port, Audio):
            _plot_wave(axis, array.reshape(-1), port.sample_rate)
        else:
            image = _plot_rows(axis, array.reshape(array.shape[0], -1), float(port.fps))
            if image is not None:
                figure.colorbar(image, cax=bar)
        axis.set_ylabel(f"{key}\n{port}", fontsize=8)
    for bar in bars:
        if not bar.images and not bar.collections:
            bar.set_axis_off()
    axes[-1].set_xlabel("seconds")
    axes[-1].set_xlim(0, seconds)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial.png")
    figure.savefig(partial, format="png", dpi=100)
    partial.replace(path)
    return path


def _plot_wave(axis, wave: np.ndarray, sample_rate: int, points: int = 4000) -> None:
    """The waveform's min/max envelope over about `points` bins (a long clip has millions of samples)."""
    bins = max(1, wave.shape[0] // points)
    usable = wave[: wave.shape[0] // bins * bins].reshape(-1, bins)
    times = (np.arange(usable.shape[0]) * bins + bins / 2) / sample_rate
    axis.fill_between(times, usable.min(axis=1), usable.max(axis=1), color="tab:blue", linewidth=0.5)
    peak = max(1e-3, float(np.abs(wave).max(initial=0.0)))
    axis.set_ylim(-1.05 * peak, 1.05 * peak)


def _plot_rows(axis, rows: np.ndarray, fps: float):
    """[frames, features] at `fps`, row i spanning [i/fps, (i+1)/fps); returns the image, if one was drawn."""
    if rows.shape[1] == 1:
        axis.stairs(rows[:, 0], np.arange(rows.shape[0] + 1) / fps, color="tab:orange")
        return None
    finite = rows[np.isfinite(rows)]
    low, high = np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0)
    return axis.imshow(
        rows.T,
        aspect="auto",
        origin="lower",
        extent=(0, rows.shape[0] / fps, 0, rows.shape[1]),
        interpolation="nearest",
        cmap="magma",
        vmin=low,
        vmax=max(high, low + 1e-6),
    )
