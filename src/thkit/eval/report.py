"""What `thkit eval` writes: the table (rich or Markdown, from the same rows), JSON, and a report folder.

`--report DIR` holds `report.md` (the table, then one section per video) and, per video, PNG plots
drawn with matplotlib's Agg canvas (no display, no global pyplot state):
- `<video>-mouth.png`: mouth opening over time, prediction against truth, and against the audio
  envelope (both standardised, so their shapes compare);
- `<video>-psnr.png`: PSNR per frame, whole frame and face box;
- `<video>-worst.png`: the frames with the lowest PSNR, prediction above truth;
- `<video>-offsets.png`: every lip-sync measure over the audio-visual offsets scanned.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from thkit.data.layout import atomic_write_bytes
from thkit.eval.evaluate import BY_KEY, JSON_VERSION, MEASURES, Evaluation, Measure, Value

WORST_FRAMES = 6
DPI = 100
SKIPPED = "skipped"
SCAN_LABELS = {
    "mouth": "mouth vs truth's mouth (r)",
    "envelope": "mouth vs audio envelope (r)",
    "truth_envelope": "truth: mouth vs audio envelope (r)",
    "sync": "sync encoder (mean cosine)",
    "truth_sync": "truth: sync encoder (mean cosine)",
}


def rows(evaluations: Sequence[Evaluation]) -> list[tuple[str, str, list[str]]]:
    """(label with its direction, unit, one formatted value per video) for every measure any video has.

    Measures in `MEASURES` order; keys thkit does not know (a newer weighted module's) come last.
    """
    keys = [measure.key for measure in MEASURES if any(measure.key in e.summary for e in evaluations)]
    keys += sorted({key for e in evaluations for key in e.summary} - set(keys))
    table = []
    for key in keys:
        measure = BY_KEY.get(key, Measure(key, key))
        label = f"{measure.label} {measure.better}".rstrip() if measure.better in ("↑", "↓") else measure.label
        table.append((label, measure.unit, [format_value(measure, e.summary.get(key)) for e in evaluations]))
    return table


def format_value(measure: Measure, value: Value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return SKIPPED if value.startswith(SKIPPED) else value  # the reason is listed under the table, once
    if measure.unit == "frames":
        return f"{int(value):+d}" if value else "0"
    if measure.unit == "%":
        return f"{value:.0f}%"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{measure.digits}f}"


def skipped(evaluations: Sequence[Evaluation]) -> list[str]:
    """Why each skipped measure was skipped, once per distinct reason: 'LPIPS (alex): put ... at ...'."""
    reasons: dict[str, list[str]] = {}
    for evaluation in evaluations:
        for key, value in evaluation.summary.items():
            if isinstance(value, str) and value.startswith(SKIPPED):
                reason = value.removeprefix(SKIPPED).lstrip(": ")
                labels = reasons.setdefault(reason, [])
                label = BY_KEY[key].label.strip() if key in BY_KEY else key
                if label not in labels:
                    labels.append(label)
    return [f"{', '.join(labels)}: {reason}" for reason, labels in reasons.items()]


def rich_table(evaluations: Sequence[Evaluation], title: str) -> Any:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title))
    table.add_column("measure")
    table.add_column("unit")
    for evaluation in evaluations:
        table.add_column(escape(evaluation.name), justify="right", overflow="fold")
    for label, unit, values in rows(evaluations):
        table.add_row(label, unit, *(escape(value) for value in values))
    return table


def markdown_table(evaluations: Sequence[Evaluation]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| measure | unit | " + " | ".join(cell(e.name) for e in evaluations) + " |"]
    lines.append("|---|---|" + "---:|" * len(evaluations))
    for label, unit, values in rows(evaluations):
        label = f"↳ {label.strip()}" if label.startswith(" ") else label  # Markdown drops the indent of a detail row
        lines.append(f"| {cell(label)} | {unit} | " + " | ".join(cell(value) for value in values) + " |")
    return "\n".join(lines) + "\n"


def to_json(evaluations: Sequence[Evaluation], mode: str) -> dict[str, Any]:
    return {"thkit_eval": JSON_VERSION, "mode": mode, "videos": {e.name: e.to_json() for e in evaluations}}


def write_json(evaluations: Sequence[Evaluation], mode: str, path: Path) -> Path:
    """Per-video and per-frame values as JSON (standard JSON: no NaN), written atomically."""
    atomic_write_bytes(path, (json.dumps(to_json(evaluations, mode), indent=1, allow_nan=False) + "\n").encode())
    return path


def write_report(evaluations: Sequence[Evaluation], folder: Path, title: str, videos: dict[str, Path] | None = None) -> Path:
    """`folder/report.md` and its plots (see the module docstring); returns the report's path.

    `videos`: rendered videos to link, by evaluation name (cross-driven evaluation renders them there).
    """
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"# {title}", "", markdown_table(evaluations)]
    lines.append("↑ higher is better, ↓ lower is better; offsets in video frames, positive when the mouth lags the audio.\n")
    lines += [f"- skipped: {reason}" for reason in skipped(evaluations)] + [""]
    for evaluation in evaluations:
        slug = _slug(evaluation.name)
        lines += [f"## {evaluation.name}", ""]
        for key, value in evaluation.info.items():
            if key == "notes":
                lines += [f"- note: {note}" for note in value]
            elif value not in (None, "", []):
                lines.append(f"- {key.replace('_', ' ')}: `{value}`")
        if videos and evaluation.name in videos:
            lines.append(f"- video: [{videos[evaluation.name].name}]({videos[evaluation.name].name})")
        lines.append("")
        for kind, draw in (("mouth", _plot_mouth), ("psnr", _plot_psnr), ("worst", _plot_worst), ("offsets", _plot_offsets)):
            figure = draw(evaluation)
            if figure is not None:
                name = f"{slug}-{kind}.png"
                figure.savefig(folder / name, dpi=DPI)
                lines += [f"![{kind}]({name})", ""]
    path = folder / "report.md"
    atomic_write_bytes(path, "\n".join(lines).encode())
    return path


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "video"


def _times(evaluation: Evaluation) -> np.ndarray:
    return (np.arange(evaluation.n_frames) + 0.5) / float(evaluation.fps)


def _standard(values: np.ndarray) -> np.ndarray:
    finite = values[np.isfinite(values)]
    if finite.size < 2 or finite.std() == 0:
        return values - (finite.mean() if finite.size else 0)
    return (values - finite.mean()) / finite.std()


def _figure(rows: int = 1, height: float = 2.6) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, height * rows), layout="constrained")
    axes = figure.subplots(rows, 1, squeeze=False)[:, 0]
    return figure, list(axes)


def _plot_mouth(evaluation: Evaluation) -> Any:
    series = evaluation.series
    against_truth = "mouth_truth" in series
    against_audio = "envelope" in series
    figure, axes = _figure(int(against_truth) + int(against_audio) or 1)
    time = _times(evaluation)
    if against_truth:
        axis = axes.pop(0)
        axis.plot(time, series["mouth_truth"], label="truth", color="black", linewidth=1)
        axis.plot(time, series["mouth_pred"], label="prediction", color="tab:red", linewidth=1)
        axis.set_ylabel("mouth opening\n(lip gap / face height)")
        axis.legend(loc="upper right")
    if against_audio:
        axis = axes.pop(0)
        axis.plot(time, _standard(series["envelope"]), label="audio envelope (dB)", color="tab:gray", linewidth=1)
        axis.plot(time, _standard(series["mouth_pred"]), label="prediction's mouth", color="tab:red", linewidth=1)
        axis.set_ylabel("standardised")
        axis.legend(loc="upper right")
    if not (against_truth or against_audio):
        axes[0].plot(time, series["mouth_pred"], color="tab:red", linewidth=1)
        axes[0].set_ylabel("mouth opening")
    figure.axes[-1].set_xlabel("time (s)")
    figure.suptitle(f"{evaluation.name}: mouth opening")
    return figure


def _plot_psnr(evaluation: Evaluation) -> Any:
    if "psnr" not in evaluation.series:
        return None
    figure, (axis,) = _figure()
    time = _times(evaluation)
    axis.plot(time, evaluation.series["psnr"], label="whole frame", color="tab:blue", linewidth=1)
    axis.plot(time, evaluation.series["face_psnr"], label="face box", color="tab:orange", linewidth=1)
    axis.set_xlabel("time (s)")
    axis.set_ylabel("PSNR (dB)")
    axis.legend(loc="lower right")
    figure.suptitle(f"{evaluation.name}: PSNR per frame")
    return figure


def _plot_worst(evaluation: Evaluation) -> Any:
    if evaluation.truth is None or evaluation.pred is None:
        return None
    psnr = np.where(np.isfinite(evaluation.series["psnr"]), evaluation.series["psnr"], np.inf)
    worst = np.argsort(psnr, kind="stable")[: min(WORST_FRAMES, evaluation.n_frames)]
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2 * len(worst), 4.4), layout="constrained")
    axes = figure.subplots(2, len(worst), squeeze=False)
    for column, index in enumerate(worst):
        for row, (frames, label) in enumerate(((evaluation.pred, "prediction"), (evaluation.truth, "truth"))):
            axis = axes[row, column]
            axis.imshow(frames[index])
            axis.set_xticks([])
            axis.set_yticks([])
            if column == 0:
                axis.set_ylabel(label)
        axes[0, column].set_title(f"frame {index}\n{evaluation.series['psnr'][index]:.2f} dB", fontsize=9)
    figure.suptitle(f"{evaluation.name}: the {len(worst)} frames with the lowest PSNR")
    return figure


def _plot_offsets(evaluation: Evaluation) -> Any:
    if not evaluation.scans:
        return None
    figure, (axis,) = _figure()
    for name, scan in evaluation.scans.items():
        axis.plot(scan.offsets, scan.scores, marker=".", linewidth=1, label=SCAN_LABELS.get(name, name))
    axis.axvline(0, color="black", linewidth=0.5)
    axis.set_xlabel("offset (frames; positive: the mouth lags the audio)")
    axis.set_ylabel("correlation or mean cosine")
    axis.legend(loc="lower right", fontsize=8)
    figure.suptitle(f"{evaluation.name}: lip-sync measures over offsets")
    return figure
