"""`thkit eval`, added to the command line through thkit's own `register_commands` hook.

thkit's `pyproject.toml` publishes this module as the hook plugin `eval` (entry-point group `thkit`),
exactly as a third-party package would publish a command. It is imported each time `thkit` starts,
so it imports only click here; the measuring modules load when the command runs.

    thkit eval PRED.mp4 (GT.mp4 | DATASET | RUN) [--json out.json] [--report DIR]
    thkit eval RUN --drive FILE [--drive FILE ...] [--json out.json] [--report DIR]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from thkit.core.hooks import hookimpl

if TYPE_CHECKING:
    from rich.console import Console

    from thkit.eval.align import Split
    from thkit.eval.evaluate import Evaluation

DEFAULT_MAX_OFFSET = 15  # thkit.eval.lipsync.DEFAULT_MAX_OFFSET, repeated so that --help imports no numpy


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(eval_command)


@click.command("eval")
@click.argument("pred", metavar="PRED", type=click.Path(path_type=Path))
@click.argument("truth", metavar="[TRUTH]", required=False, type=click.Path(path_type=Path))
@click.option(
    "--drive", "drives", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
    help="Cross-driven: render the run PRED saying this audio (or video) file and measure its lip sync; repeatable.",
)  # fmt: skip
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Write per-video and per-frame values to this JSON file.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path), help="Write report.md with plots into this folder.")
@click.option(
    "--split", type=click.Choice(["auto", "val", "all"]), default="auto", show_default=True,
    help="Frames of a DATASET or RUN truth: the validation split, all, or auto (a dataset: whichever lasts as long as PRED; a run: val).",
)  # fmt: skip
@click.option("--trim", is_flag=True, help="Compare the common start of clips of different lengths instead of refusing.")
@click.option("--resize", is_flag=True, help="Scale PRED to the truth's frame size instead of refusing (changes PSNR and SSIM).")
@click.option(
    "--max-offset", type=click.IntRange(min=0), default=DEFAULT_MAX_OFFSET, show_default=True,
    help="Audio-visual offsets scanned by the lip-sync measures, in frames either way.",
)  # fmt: skip
def eval_command(
    pred: Path,
    truth: Path | None,
    drives: tuple[Path, ...],
    json_path: Path | None,
    report_dir: Path | None,
    split: Split,
    trim: bool,
    resize: bool,
    max_offset: int,
) -> None:
    """Measure the video PRED against TRUTH: a ground-truth video, a DATASET folder, or a RUN folder
    (whose dataset's validation split is the truth, and whose sync encoder rates lip sync).

    With --drive, PRED is a RUN: it renders each drive file and reports the lip-sync measures of each
    (there is no ground truth of new audio). Metrics that need pretrained weights (LPIPS, FID, LSE)
    say where to put the files when they are missing.
    """
    import tempfile

    from rich.console import Console

    from thkit.eval.measure import measure_drives, measure_video

    console = Console()
    if drives:
        if truth is not None:
            raise click.UsageError("with --drive, give only the RUN folder (the drive audio has no ground-truth video)")
        if split != "auto" or trim or resize:
            raise click.UsageError("--split, --trim and --resize compare with a truth; --drive has none")
        with tempfile.TemporaryDirectory(prefix="thkit-eval-") as scratch:
            evaluations, videos = measure_drives(pred, drives, report_dir or Path(scratch), max_offset=max_offset)
            _write(console, evaluations, "drive", f"{pred} driven by new audio (lip sync only)", json_path, report_dir, videos)
        return
    if truth is None:
        raise click.UsageError("give the truth to compare PRED with (GT.mp4, DATASET or RUN), or --drive FILE with a RUN")
    evaluation = measure_video(pred, truth, split=split, trim=trim, resize=resize, max_offset=max_offset)
    _write(console, [evaluation], "pair", f"{pred} against {truth}", json_path, report_dir, None)


def _write(
    console: Console,
    evaluations: Sequence[Evaluation],
    mode: str,
    title: str,
    json_path: Path | None,
    report_dir: Path | None,
    videos: dict[str, Path] | None,
) -> None:
    """Print the table and notes; write the JSON and the report when asked."""
    from rich.markup import escape

    from thkit.eval import report

    console.print(report.rich_table(evaluations, title))
    for reason in report.skipped(evaluations):
        console.print(f"[yellow]skipped:[/yellow] {escape(reason)}", highlight=False)
    for evaluation in evaluations:
        for note in evaluation.info.get("notes", []):
            console.print(f"[yellow]note:[/yellow] {escape(evaluation.name)}: {escape(note)}", highlight=False)
    if json_path is not None:
        console.print(f"wrote {report.write_json(evaluations, mode, json_path)}")
    if report_dir is not None:
        console.print(f"wrote {report.write_report(evaluations, report_dir, title, videos)}")
