"""The `thkit` command: thin wrappers that call into the packages and print with rich.

User errors (`ThkitError`) print their message and exit with status 2, without a traceback.
Heavy modules (torch, the encoders) are imported inside the commands that need them, so that
`thkit plugins`, `thkit schema` and `thkit --help` stay fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from thkit import __version__
from thkit.core import hooks
from thkit.core.errors import ThkitError

out = Console()
err = Console(stderr=True)

SET_OPTION = click.option(
    "--set", "overrides", multiple=True, metavar="PATH=VALUE", help="Override a spec value, e.g. nodes.fuse.params.dim=128."
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="thkit")
def cli() -> None:
    """Build audio-driven talking-head avatars from spec files."""


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--check", is_flag=True, help="Validate the spec and construct every module, then stop (no training).")
@click.option("--out", "run_dir", type=click.Path(file_okay=False, path_type=Path), help="Run folder to train into (default: runs/<spec name>).")
@click.option("--resume", is_flag=True, help="Continue the run in the run folder from its last checkpoint.")
@click.option("--force", is_flag=True, help="Replace a run that is already in the run folder.")
@click.option("--stages", metavar="A,B", help="Train only these stages (comma-separated); the others' weights come from the run folder.")
@SET_OPTION
def build(
    spec: Path, check: bool, run_dir: Path | None, resume: bool, force: bool, stages: str | None, overrides: tuple[str, ...]
) -> None:
    """Validate SPEC, build its graph and train it, stage by stage, into a run folder."""
    if check:
        if run_dir is not None or resume or force or stages is not None:
            raise click.UsageError("--check only validates; it takes no --out, --resume, --force or --stages")
        _check_build(spec, overrides)
        return
    from thkit.train import train

    names = [name.strip() for name in stages.split(",") if name.strip()] if stages is not None else None
    run = train(spec, run_dir, overrides=overrides, resume=resume, force=force, stages=names)
    out.print(f"[green]ok[/green] trained {spec} into {run} (weights.safetensors, preview.mp4, metrics.jsonl, tb/)")


def _check_build(spec: Path, overrides: tuple[str, ...]) -> None:
    """`thkit build SPEC --check`: validate, construct every module, and list them."""
    from thkit.core.graph import load_graph

    graph = load_graph(spec, overrides=overrides)
    modules = graph.build_modules()
    table = Table(title=f"{graph.spec.name}: {len(graph.nodes)} nodes")
    for column in ("node", "kind", "type", "parameters", "outputs"):
        table.add_column(column, justify="right" if column == "parameters" else "left")
    total = 0
    for name, node in graph.nodes.items():
        count = sum(parameter.numel() for parameter in modules[name].parameters())
        total += count
        ports = ", ".join(f"{port_name}: {port}" for port_name, port in node.outputs.items())
        table.add_row(name, node.spec.kind, node.spec.type, f"{count:,}", ports)
    table.add_section()
    table.add_row("total", "", "", f"{total:,}", "")
    out.print(table)
    out.print(f"[green]ok[/green] {spec} is valid and every module was constructed")


@cli.command()
def plugins() -> None:
    """List installed components and hook plugins with their status."""
    from thkit.core.registry import registry

    components = registry()
    components.load_all()
    manager = hooks.plugin_manager()
    table = Table(title="thkit plugins")
    for column in ("kind", "name", "distribution", "version", "status"):
        table.add_column(column)
    for entry in components:
        style = "green" if entry.status == "ok" else "red"
        table.add_row(entry.kind, entry.name, entry.distribution, entry.version, f"[{style}]{entry.status}[/{style}]")
    for name, _ in manager.list_name_plugin():
        table.add_row("hooks", name, hooks.distributions.get(name, ""), "", "[green]ok[/green]")
    for name, distribution, error in hooks.failures:
        table.add_row("hooks", name, distribution, "", f"[red]failed: {error}[/red]")
    out.print(table)


@cli.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file instead of stdout.")
def schema(output: Path | None) -> None:
    """JSON Schema of spec files, including every registered component's params."""
    from thkit.core.schema import spec_schema

    text = json.dumps(spec_schema(), indent=2) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
        err.print(f"wrote {output}")


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@SET_OPTION
def graph(spec: Path, overrides: tuple[str, ...]) -> None:
    """Print SPEC's graph as Mermaid flowchart text."""
    from thkit.core.graph import load_graph

    click.echo(load_graph(spec, overrides=overrides).to_mermaid(), nl=False)


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--audio", "audio_path", type=click.Path(dir_okay=False, path_type=Path),
    help="Audio or video file; a transcript <name>.txt beside it is read when present.",
)
@click.option("--text", help='Speak this with the built-in offline voice instead of reading a file, e.g. --text "Hello there."')
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Where to write the .npz.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="Also draw the waveform and every output to this PNG.")
@SET_OPTION
def encode(spec: Path, audio_path: Path | None, text: str | None, output: Path, plot: Path | None, overrides: tuple[str, ...]) -> None:
    """Run SPEC's audio part (encoders and fusions) on a file or on text, and save every node's outputs.

    Encoder outputs are cached in $THKIT_CACHE (default ~/.cache/thkit/features).
    """
    from thkit.audio.cache import FeatureCache, default_cache_root
    from thkit.audio.encode import encode_audio, plot_encoding, save_npz
    from thkit.core.graph import load_graph

    if (audio_path is None) == (text is None):
        raise click.UsageError('give exactly one of --audio FILE or --text "..."')
    graph = load_graph(spec, overrides=overrides)
    encoding = encode_audio(graph, audio_path, text=text, cache=FeatureCache(default_cache_root()))
    save_npz(encoding, output)
    source = audio_path if audio_path is not None else f"text: {text}"
    table = Table(title=escape(f"encoded {source} ({float(encoding.timeline.seconds):.2f} s)"))
    for column in ("output", "port", "shape"):
        table.add_column(column)
    for key, (port, array) in encoding.items():
        table.add_row(key, str(port), " x ".join(map(str, array.shape)))
    out.print(table)
    out.print(f"wrote {output}")
    if plot is not None:
        plot_encoding(encoding, encoding.audio, encoding.timeline.sample_rate, plot, title=encoding.timeline.text)
        out.print(f"wrote {plot}")


@cli.command()
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path), help="Dataset folder to create (new or empty).")
@click.option("--seconds", type=float, default=60.0, show_default=True, help="Length of the clip in seconds.")
@click.option("--size", type=int, default=256, show_default=True, help="Frame width and height in pixels (even, 64 or more).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for head motion, blinks and the voice's variation.")
def synth(output: Path, seconds: float, size: int, seed: int) -> None:
    """Generate the built-in synthetic subject: a talking head with ground truth for everything."""
    from thkit.data.synth import generate

    dataset = generate(output, seconds=seconds, size=size, seed=seed)
    out.print(f"[green]ok[/green] wrote {dataset}: video.mp4, frames, masks, arrays and ground_truth/")


@cli.command()
@click.argument("video", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", "dataset", required=True, type=click.Path(file_okay=False, path_type=Path), help="Dataset folder to write; an unfinished run there is resumed.")
@click.option("--fps", default="25", show_default=True, help="Frame rate of the dataset, e.g. 25 or 30000/1001.")
@click.option("--size", default=512, show_default=True, type=int, help="Width and height of the square frames, in pixels.")
def preprocess(video: Path, dataset: Path, fps: str, size: int) -> None:
    """Turn a talking-head VIDEO into a dataset: frames, audio, landmarks, head poses, masks."""
    import warnings

    from thkit.data.preprocess import preprocess as run_preprocess

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_preprocess(video, dataset, fps=fps, size=size, progress=True)
    for warning in caught:
        if issubclass(warning.category, UserWarning):
            err.print(f"[yellow]warning:[/yellow] {escape(str(warning.message))}", highlight=False, soft_wrap=True)
    meta = result.meta
    table = Table(title=str(dataset), show_header=False)
    table.add_column()
    table.add_column()
    table.add_row("frames", f"{meta.n_frames} at {meta.fps} fps, {meta.width} x {meta.height} px ({meta.n_frames - meta.n_val} train, {meta.n_val} val)")
    table.add_row("focal length", f"{meta.intrinsics.focal:.0f} px")
    table.add_row("head pose fit", f"{meta.extra['pose']['reprojection_px_mean']:.2f} px mean reprojection error")
    table.add_row("warnings", str(len(meta.extra["warnings"])))
    out.print(table)
    out.print(f"[green]ok[/green] wrote {dataset}")


@cli.command()
@click.argument("run", type=click.Path(file_okay=False, path_type=Path))
@click.option("--audio", "audio_path", type=click.Path(dir_okay=False, path_type=Path), help="Speech to drive the avatar (any audio or video file).")
@click.option("--text", help='Speak this with the built-in offline voice instead, e.g. --text "Hello there."')
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The mp4 to write (H.264 + AAC).")
@click.option("--poses", type=click.Path(dir_okay=False, path_type=Path), help="A .npy of [frames, 4, 4] camera-to-world poses (default: replay training poses).")
@click.option(
    "--edit", "edit_pairs", multiple=True, metavar="KEY=VALUE",
    help="Change the predicted landmarks before drawing (landmark-driven specs): mouth_scale=1.3 exaggerates "
    "the mouth, 0.7 damps it; eyes=closed or eyes=open. Repeatable.",
)  # fmt: skip
def render(run: Path, audio_path: Path | None, text: str | None, output: Path, poses: Path | None, edit_pairs: tuple[str, ...]) -> None:
    """Render the trained RUN saying new audio or text, into an mp4 with the audio muxed in."""
    from thkit.render.edits import parse_edits
    from thkit.render.pipeline import render_run

    if (audio_path is None) == (text is None):
        raise click.UsageError('give exactly one of --audio FILE or --text "..."')
    edits = parse_edits(edit_pairs)  # before loading anything: a typo fails at once
    written = render_run(run, output, audio_path=audio_path, text=text, poses=poses, edits=edits)
    out.print(f"[green]ok[/green] wrote {written}")


@cli.command()
@click.option(
    "--spec", default=None, type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Demo spec to train on the synthetic subject (default examples/demo.yaml; e.g. examples/landmark-demo.yaml).",
)  # fmt: skip
@click.option("--out", "run_dir", default=None, type=click.Path(file_okay=False, path_type=Path), help="Run folder of the demo (default runs/demo, or runs/NAME for --spec NAME.yaml).")
def demo(spec: Path | None, run_dir: Path | None) -> None:
    """Train a demo spec on the synthetic subject, render a held-out sentence, print metrics."""
    from thkit.demo import SPEC, run_demo

    spec = spec or SPEC
    run_demo(run_dir or Path("runs") / spec.stem, spec=spec)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning user errors into a message and exit status 2."""
    try:
        hooks.plugin_manager().hook.register_commands(cli=cli)
        cli.main(args=argv, prog_name="thkit", standalone_mode=False)
    except ThkitError as error:
        err.print(f"[bold red]error:[/bold red] {escape(error.format())}", highlight=False, soft_wrap=True)
        sys.exit(error.exit_code)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)


if __name__ == "__main__":
    main()
