"""The staged trainer: a spec's stages run in order on one subject, into a run folder.

Per stage:
- the nodes it names in `train:` train; every other node is frozen (no gradients, eval mode);
- its loss is the weighted sum of its `losses:` (`thkit.train.losses`; a stage naming none gets
  `default_losses`); `sync` fits sync encoders with their own loop (`thkit.train.mouth`);
- the optimiser is AdamW (betas 0.9, 0.99) over the trained nodes' parameters, in two groups as
  ER-NeRF has them: parameters whose names contain "plane" or "grid" (encodings) at 10x the rate of
  the rest. The rest's rate is the stage's `lr`, default 1e-3 (grids then 1e-2, ER-NeRF's rates);
- the rates decay exponentially from 1x to 0.1x over the stage: rate(step) = rate * 0.1 ** (step / steps),
  a function of the step alone, so resuming needs no scheduler state beyond the step;
- `feed:` substitutions hold while the stage trains (`thkit.train.forward`);
- a module that needs constants from the subject's data (e.g. the landmark transformer's neutral
  face) defines `init_from_subject(subject)`, called once after the modules are built and before a
  run's saved weights are loaded; it keeps what it derives in buffers, so the weights carry it;
- the final image is the stage's last drawn renderer's rgba over the background plate. A stage that
  does not draw the graph's last renderer (e.g. a head trained before its torso renderer) composites
  over the plate with the ground-truth torso pasted in, as ER-NeRF's head stage does.

Each step samples F frames and R rays (or lip patches, for structure losses) with a seeded
generator (`thkit.train.subject`). The run is checkpointed every `checkpoint_every` steps and at each
stage's end (`thkit.train.run`); a killed run resumed from its folder ends with the same weights as
one never interrupted (deterministic algorithms, every random stream saved; on CPU the results are
bit-identical).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import Tensor, nn

from thkit import __version__
from thkit.audio.cache import FeatureCache, dataset_cache_root
from thkit.core import hooks
from thkit.core.errors import SpecError, ThkitError, did_you_mean, listing
from thkit.core.graph import Graph, Ref, load_graph
from thkit.core.registry import Registry
from thkit.core.spec import StageSpec
from thkit.data.layout import Dataset
from thkit.train import checks
from thkit.train import run as runs
from thkit.train.data import cache_root, resolve_dataset
from thkit.train.forward import GraphRun, composite, parse_feeds
from thkit.train.losses import LOSSES, LossInputs, default_losses, landmark_outputs
from thkit.train.mouth import fit_sync_encoder, mouth_crops
from thkit.train.subject import RaySampler, Subject

DEFAULT_LR = 1e-3
GRID_LR_FACTOR = 10.0
FINAL_LR_FACTOR = 0.1
BETAS = (0.9, 0.99)

# Called after every step (after any checkpoint): (stage name, steps of that stage done).
StepCallback = Callable[[str, int], None]


@dataclass(frozen=True)
class TrainOptions:
    """How steps sample and how often the run is saved (the spec says what to train; these say how)."""

    frames: int = 2  # frames per step
    rays: int = 4096  # rays per step, shared by its frames (scattered sampling)
    face_fraction: float = 0.5  # share of scattered rays inside the face box
    face_margin: float = 0.25  # the face box grows by this fraction of its size on each side
    patch: int = 32  # lip patch side, for stages with structure losses (lpips, ssim)
    checkpoint_every: int = 1000  # steps (a sync stage fits in chunks of this many steps)
    log_every: int = 10  # steps between metrics lines
    preview_frames: int = 4  # validation frames in preview.mp4 (0: none)
    render_chunk: int = 16384  # rays per renderer call when drawing whole frames
    seed: int = 0
    device: str | None = None  # default: cuda when available, else cpu

    def __post_init__(self) -> None:
        for name in ("frames", "rays", "patch", "checkpoint_every", "log_every", "render_chunk"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainOptions.{name} must be 1 or more, got {getattr(self, name)}")
        if self.rays < self.frames:
            raise ValueError(f"TrainOptions.rays ({self.rays}) must be at least frames ({self.frames})")

    def comparable(self) -> dict[str, Any]:
        """The options that change results: a resumed run must use the same ones."""
        return {key: value for key, value in asdict(self).items() if key not in ("device", "render_chunk", "preview_frames")}


def train(
    spec: str | Path,
    out: str | Path | None = None,
    *,
    overrides: Iterable[str] = (),
    resume: bool = False,
    force: bool = False,
    stages: Sequence[str] | None = None,
    progress: bool = True,
    options: TrainOptions | None = None,
    components: Registry | None = None,
    callback: StepCallback | None = None,
) -> Path:
    """Train `spec` into the run folder `out` (default `runs/<spec name>`); returns the folder.

    `resume` continues the run in `out` from its last checkpoint (a fresh run when there is none);
    `stages` runs only the stages named (the others' weights are taken from `out` when it holds a
    run of the same spec); `force` replaces a run that is in `out`. `components` replaces the
    installed component registry (tests); `callback` is called after every step.
    """
    options = options or TrainOptions()
    graph = load_graph(spec, overrides=overrides, components=components)
    if graph.spec.train is None:
        raise ThkitError(f"{spec}: the spec has no train section", hint="add train: {stages: [...]}, or use `thkit build SPEC --check`")
    if not hooks.plugin_manager().is_registered(checks):  # the stage checks hold even with the hook plugin disabled
        problems = checks.check_graph(graph)
        if problems:
            raise SpecError(problems)
    chosen = _chosen_stages(graph, stages)
    folder = runs.RunFolder(out if out is not None else Path("runs") / graph.spec.name)
    mode = _mode(folder, graph.spec.name, resume=resume, force=force, subset=stages is not None)
    dataset = resolve_dataset(graph.spec.data, cache_root(), progress=progress)
    resolved = _resolved_spec(graph, dataset)
    if mode == "resume":
        _check_same_run(folder, resolved, options)
    folder.write_spec(yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True))
    graph = _reload(folder, graph, components)
    with _deterministic():
        trainer = Trainer(graph, Dataset(dataset), folder, options, progress=progress, callback=callback)
        trainer.start(mode, chosen)
        trainer.run(chosen)
    return folder.root


def _chosen_stages(graph: Graph, names: Sequence[str] | None) -> list[str]:
    assert graph.spec.train is not None
    known = [stage.name for stage in graph.spec.train.stages]
    if names is None:
        return known
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ThkitError(f"unknown stage '{unknown[0]}'{did_you_mean(unknown[0], known)}; stages: {', '.join(known)}")
    return [name for name in known if name in names]


def _mode(folder: runs.RunFolder, spec_name: str, *, resume: bool, force: bool, subset: bool) -> str:
    """'fresh', 'resume' or 'continue' (a stage subset on an existing run's weights); refuses to overwrite."""
    if folder.root.exists() and not folder.root.is_dir():
        raise ThkitError(f"--out {folder.root} is a file, not a folder")
    if folder.is_unstarted:
        folder.open().clear()
        return "fresh"
    if not folder.is_run:
        raise ThkitError(f"--out {folder.root} is a folder that holds no thkit run", hint="choose a new or empty folder for the run")
    folder.open()
    other = folder.read_record().get("spec")
    if other == spec_name and resume:
        return "resume"
    if other == spec_name and subset and not force:
        return "continue"
    if not force:
        if other != spec_name:
            raise ThkitError(f"{folder.root} holds a run of spec '{other}', not '{spec_name}'", hint="choose another --out, or pass --force to replace it")
        raise ThkitError(
            f"{folder.root} already holds a run of spec '{other}'",
            hint="pass --resume to continue it, --stages to retrain some of its stages, or --force to replace it",
        )
    folder.clear()
    return "fresh"


def _resolved_spec(graph: Graph, dataset: Path) -> dict[str, Any]:
    """The spec as written (overrides applied), its data section pointing at the resolved dataset."""
    resolved = graph.spec.model_dump(mode="json", exclude_unset=True)
    resolved["data"] = {"dataset": str(dataset)}
    return resolved


def _check_same_run(folder: runs.RunFolder, resolved: dict[str, Any], options: TrainOptions) -> None:
    saved = yaml.safe_load(folder.path(runs.SPEC).read_text())
    difference = _first_difference(saved, resolved)
    if difference is not None:
        raise ThkitError(
            f"the spec differs from the one {folder.root} was trained with (at {difference or 'the top level'})",
            hint="resume with the same spec and --set values, or pass --force to start over",
        )
    saved_options = folder.read_record().get("options", {})
    changed = [key for key, value in options.comparable().items() if saved_options.get(key) != value]
    if changed:
        raise ThkitError(f"training options differ from those {folder.root} was trained with: {', '.join(changed)}")


def _first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """Dotted path of the first place two JSON-like values differ, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [key for key in b if key not in a]:
            found = _first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _first_difference(x, y, f"{path}.{index}" if path else str(index))
            if found is not None:
                return found
        return None
    return None if a == b else path


def _reload(folder: runs.RunFolder, original: Graph, components: Registry | None) -> Graph:
    """The graph of the resolved spec (its context now read from dataset.json), checked against the original."""
    graph = load_graph(folder.path(runs.SPEC), components=components)
    before, after = original.context, graph.context
    if (before.video_fps, before.image_size) != (after.video_fps, after.image_size):
        raise ThkitError(
            f"the dataset {graph.spec.data.dataset} is {after.video_fps} fps at {after.image_size} px, but the spec's data "
            f"section asks for {before.video_fps} fps at {before.image_size} px; the trainer does not resample",
            hint="drop data.fps and data.size, or make a dataset with those settings",
        )
    return graph


@contextlib.contextmanager
def _deterministic() -> Iterator[None]:
    """Deterministic kernels while training (warning only where an op has none), restored afterwards."""
    before, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_only)


@dataclass
class StagePlan:
    """What a stage trains and how, derived from its spec."""

    index: int
    spec: StageSpec
    losses: dict[str, float]
    feeds: dict[Ref, Ref]
    renderers: list[str]  # drawn, in graph order; the last one's rgba is the final image
    plate_with_torso: bool
    patches: bool
    landmarks: list[Ref] = field(default_factory=list)  # predicted outputs the landmarks loss compares

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def fits(self) -> bool:
        return any(LOSSES[name].fits for name in self.losses)


class Trainer:
    """Runs stages of one graph on one subject, checkpointing into a run folder."""

    def __init__(
        self, graph: Graph, dataset: Dataset, folder: runs.RunFolder, options: TrainOptions, *, progress: bool, callback: StepCallback | None
    ) -> None:
        assert graph.spec.train is not None
        self.graph = graph
        self.dataset = dataset
        self.folder = folder
        self.options = options
        self.callback = callback
        self.device = torch.device(options.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.stages = graph.spec.train.stages
        torch.manual_seed(options.seed)
        self.modules = {name: module.to(self.device) for name, module in graph.build_modules().items()}
        self.visuals = {
            name: graph.nodes[name].component.build_visual().to(self.device)  # type: ignore[attr-defined]
            for name in self._fitted_by_sync()
        }
        self.subject = Subject(dataset, self.device)
        for module in self.modules.values():  # constants a module derives from the data; saved weights, loaded later, win
            if hasattr(module, "init_from_subject"):
                module.init_from_subject(self.subject)
        self.run_graph = GraphRun(graph, self.modules, self.subject, FeatureCache(dataset_cache_root(dataset.root)))
        self.generator = torch.Generator().manual_seed(options.seed)
        self.sampler = RaySampler(
            self.subject,
            self.generator,
            frames=options.frames,
            rays=options.rays,
            patch=options.patch,
            face_fraction=options.face_fraction,
            face_margin=options.face_margin,
        )
        self.record: dict[str, Any] = {}
        self.metrics: list[str] = []
        self.resume_state: runs.Checkpoint | None = None
        self.progress = _Progress(progress)
        self.writer: Any = None

    def _fitted_by_sync(self) -> list[str]:
        """Nodes some stage fits with the sync loss: each gets a mouth encoder, built with the modules."""
        names: list[str] = []
        for stage in self.stages:
            if "sync" in default_losses(self.graph, stage):
                names += [name for name in stage.train if name not in names]
        return names

    # -- the run ---------------------------------------------------------------------------

    def start(self, mode: str, chosen: Sequence[str]) -> None:
        """Load what the run folder holds (weights for 'resume' and 'continue'; state for 'resume')."""
        done = {stage.name: 0 for stage in self.stages}
        global_step = 0
        if mode != "fresh":
            previous = self.folder.read_record()
            global_step = int(previous.get("global_step", 0))
            done.update({entry["name"]: int(entry["done"]) for entry in previous.get("stages", []) if entry["name"] in done})
            if self.folder.path(runs.WEIGHTS).is_file():
                self.folder.load_weights(self.modules)
            if self.folder.path(runs.STATE_JSON).is_file():
                state = self.folder.load_state()
                runs.load_aux(self.visuals, state.tensors)
                if mode == "resume":
                    runs.load_rng_state(self.generator, state.tensors, state.meta["rng"])
                    self.resume_state = state
            if mode == "continue":
                done.update({name: 0 for name in chosen})
        self.metrics = self.folder.read_metrics(global_step) if mode != "fresh" else []
        self.record = {
            "format": runs.FORMAT,
            "thkit": __version__,
            "spec": self.graph.spec.name,
            "dataset": str(self.dataset.root),
            "options": self.options.comparable(),
            "stages": [{"name": stage.name, "steps": stage.steps, "done": done[stage.name]} for stage in self.stages],
            "global_step": global_step,
        }
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(self.folder.path(runs.TENSORBOARD)), purge_step=global_step if mode != "fresh" else None)
        if mode == "fresh":
            self.checkpoint(None, None)

    def run(self, chosen: Sequence[str]) -> None:
        try:
            with self.progress:
                for index, stage in enumerate(self.stages):
                    entry = self.record["stages"][index]
                    if stage.name in chosen and entry["done"] < stage.steps:
                        self.train_stage(self._plan(index, stage), start=entry["done"])
            if self.options.preview_frames and self.run_graph.renderers:
                self.preview()
        finally:
            self.writer.close()

    def _plan(self, index: int, stage: StageSpec) -> StagePlan:
        losses = default_losses(self.graph, stage)
        feeds = parse_feeds(stage.feed)
        renderers = self.run_graph.renderers_for(stage.train, feeds) if any(LOSSES[name].renders for name in losses) else []
        return StagePlan(
            index=index,
            spec=stage,
            losses=losses,
            feeds=feeds,
            renderers=renderers,
            plate_with_torso=bool(renderers) and renderers[-1] != self.run_graph.renderers[-1],
            patches=any(LOSSES[name].patches for name in losses),
            landmarks=[Ref(name, port) for name in stage.train for port in landmark_outputs(self.graph, name)]
            if any(LOSSES[name].landmarks for name in losses)
            else [],
        )

    def _freeze_all_but(self, trained: Iterable[str]) -> None:
        trained = set(trained)
        for name, module in self.modules.items():
            module.requires_grad_(name in trained)
            module.train(name in trained)

    def train_stage(self, plan: StagePlan, start: int) -> None:
        self._freeze_all_but(plan.spec.train)
        self.progress.stage(plan.name, plan.spec.steps, start)
        if plan.fits:
            self._fit_sync(plan, start)
        else:
            self._descend(plan, start)
        self.checkpoint(plan.name, None)

    # -- gradient stages -------------------------------------------------------------------

    def _optimizer(self, plan: StagePlan) -> torch.optim.Optimizer:
        groups = param_groups({name: self.modules[name] for name in plan.spec.train}, plan.spec.lr or DEFAULT_LR)
        if not groups:
            raise ThkitError(f"stage '{plan.name}' trains {listing(plan.spec.train)}, which have no parameters", hint="list nodes with weights in train:")
        optimizer = torch.optim.AdamW(groups, betas=BETAS)
        state = self.resume_state
        if state is not None and state.meta.get("stage") == plan.name and state.meta.get("optimizer") is not None:
            runs.load_optimizer_state(optimizer, state.tensors, state.meta["optimizer"])
        self.resume_state = None
        return optimizer

    def _descend(self, plan: StagePlan, start: int) -> None:
        optimizer = self._optimizer(plan)
        trained = set(plan.spec.train)
        encoded = self.run_graph.encode(trained)
        sequence_trains = any(name in trained for name in self.run_graph.sequence_nodes)
        fixed = None
        if not sequence_trains:
            with torch.no_grad():
                fixed = self.run_graph.sequences(encoded, plan.feeds)
        train_rows = slice(self.subject.train_frames.start, self.subject.train_frames.stop)
        tracked = self.subject.array("landmarks3d").to(self.device)[train_rows] if plan.landmarks else None
        for step in range(start, plan.spec.steps):
            decay = FINAL_LR_FACTOR ** (step / plan.spec.steps)
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * decay
            values = fixed if fixed is not None else self.run_graph.sequences(encoded, plan.feeds)
            inputs = LossInputs()
            if plan.renderers:
                batch = self.sampler.sample(patches=plan.patches)
                inputs.renders = self.run_graph.render(batch, values, plan.feeds, plan.renderers)
                plate = batch.plate_with_torso() if plan.plate_with_torso else batch.plate
                inputs.rgb = composite(inputs.renders[plan.renderers[-1]]["rgba"], plate)
                inputs.target, inputs.labels, inputs.patch = batch.target, batch.labels, batch.patch
            inputs.landmarks = [(values[ref][train_rows], tracked) for ref in plan.landmarks]
            terms = {name: LOSSES[name].compute(inputs) for name in plan.losses}  # type: ignore[misc]
            loss = sum(weight * terms[name] for name, weight in plan.losses.items())
            if not isinstance(loss, Tensor) or not loss.requires_grad:
                raise ThkitError(
                    f"stage '{plan.name}': its losses ({listing(plan.losses)}) do not depend on the nodes it trains ({listing(plan.spec.train)})",
                    hint="train nodes upstream of what the losses compare, or check the stage's feed",
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            psnr = _psnr(inputs.rgb, inputs.target) if inputs.rgb is not None else None
            self._after_step(plan, step + 1, optimizer, loss.item(), {name: term.item() for name, term in terms.items()}, psnr)

    def _after_step(
        self, plan: StagePlan, done: int, optimizer: torch.optim.Optimizer | None, loss: float, terms: Mapping[str, float], psnr: float | None, steps: int = 1
    ) -> None:
        entry = self.record["stages"][plan.index]
        entry["done"] = done
        self.record["global_step"] += steps
        last = done == plan.spec.steps
        if done % self.options.log_every == 0 or last or steps > 1:
            lr = optimizer.param_groups[0]["lr"] if optimizer is not None else plan.spec.lr or DEFAULT_LR
            self.log(plan.name, done, loss, terms, psnr, lr)
        self.progress.update(done, loss, psnr)
        if done % self.options.checkpoint_every == 0 and not last:
            self.checkpoint(plan.name, optimizer)
        if self.callback is not None:
            self.callback(plan.name, done)

    # -- the sync stage ---------------------------------------------------------------------

    def _fit_sync(self, plan: StagePlan, start: int) -> None:
        """Fit each trained sync encoder in chunks of `checkpoint_every` steps (each chunk a fresh Adam)."""
        self.resume_state = None
        audio = self.subject.audio()
        frames = self.subject.train_frames
        crops = {}
        for name in plan.spec.train:
            params = self.graph.nodes[name].component.params
            crops[name] = mouth_crops(self.subject, frames, params.mouth_height, params.mouth_width)
        done = start
        while done < plan.spec.steps:
            count = min(self.options.checkpoint_every - done % self.options.checkpoint_every, plan.spec.steps - done)
            losses: list[float] = []
            for position, name in enumerate(plan.spec.train):
                seed = int(np.random.SeedSequence([self.options.seed, plan.index, done, position]).generate_state(1)[0])
                params = self.graph.nodes[name].component.params
                losses += fit_sync_encoder(
                    self.modules[name], self.visuals[name], audio, crops[name], count, temperature=params.temperature, lr=plan.spec.lr or DEFAULT_LR, seed=seed
                )
            done += count
            mean = sum(losses) / len(losses)
            self._after_step(plan, done, None, mean, {"sync": mean}, None, steps=count)

    # -- saving ---------------------------------------------------------------------------

    def checkpoint(self, stage: str | None, optimizer: torch.optim.Optimizer | None) -> None:
        tensors, rng = runs.rng_state(self.generator)
        tensors.update(runs.aux_tensors(self.visuals))
        meta: dict[str, Any] = {"stage": stage, "global_step": self.record["global_step"], "rng": rng, "optimizer": None}
        if optimizer is not None:
            optimizer_tensors, meta["optimizer"] = runs.optimizer_state(optimizer)
            tensors.update(optimizer_tensors)
        self.folder.save(self.record, self.modules, runs.Checkpoint(tensors, meta), self.metrics)

    def log(self, stage: str, done: int, loss: float, terms: Mapping[str, float], psnr: float | None, lr: float | None) -> None:
        step = self.record["global_step"]
        line = {"step": step, "stage": stage, "stage_step": done, "loss": loss, "terms": dict(terms), "psnr": psnr, "lr": lr, "time": time.time()}
        self.metrics.append(json.dumps(line))
        self.writer.add_scalar("loss/total", loss, step)
        for name, value in terms.items():
            self.writer.add_scalar(f"loss/{name}", value, step)
        if psnr is not None:
            self.writer.add_scalar("psnr", psnr, step)
        if lr is not None:
            self.writer.add_scalar("lr", lr, step)

    def preview(self) -> None:
        """preview.mp4: the first validation frames (train frames when there are none), rendered | truth."""
        frames = list(self.subject.val_frames or self.subject.train_frames)[: self.options.preview_frames]
        for module in self.modules.values():
            module.eval()
        with torch.no_grad():
            values = self.run_graph.sequences(self.run_graph.encode(()), {})
            images = []
            for index in frames:
                rendered = self.run_graph.render_frame(index, values, self.options.render_chunk).cpu()
                truth = self.subject.image(index)[0].float().div(255)
                images.append((torch.cat([rendered, truth], dim=1) * 255).round().to(torch.uint8).numpy())
        runs.write_video(self.folder.path(runs.PREVIEW), images, self.subject.fps)
        self.writer.add_image("preview", images[0], self.record["global_step"], dataformats="HWC")


def param_groups(modules: Mapping[str, nn.Module], rate: float) -> list[dict[str, Any]]:
    """AdamW groups: grid and plane parameters (by name) at GRID_LR_FACTOR x `rate`, the rest at `rate`."""
    grids: list[nn.Parameter] = []
    rest: list[nn.Parameter] = []
    for module in modules.values():
        for name, parameter in module.named_parameters():
            (grids if "plane" in name.lower() or "grid" in name.lower() else rest).append(parameter)
    return [{"params": params, "base_lr": lr, "lr": lr} for params, lr in ((rest, rate), (grids, rate * GRID_LR_FACTOR)) if params]


def _psnr(rgb: Tensor, target: Tensor) -> float:
    mse = float((rgb.detach() - target).pow(2).mean())
    return 10 * math.log10(1 / mse) if mse > 0 else math.inf


class _Progress:
    """A rich progress bar per stage: step, loss, PSNR, time left (nothing when disabled)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bars: Any = None
        self.task: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bars = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}  psnr {task.fields[psnr]}"),
                TimeRemainingColumn(),
            )
            self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bars is not None:
            self.bars.stop()

    def stage(self, name: str, steps: int, done: int) -> None:
        if self.bars is not None:
            self.task = self.bars.add_task(name, total=steps, completed=done, loss="-", psnr="-")

    def update(self, done: int, loss: float, psnr: float | None) -> None:
        if self.bars is not None:
            self.bars.update(self.task, completed=done, loss=f"{loss:.4g}", psnr="-" if psnr is None else f"{psnr:.2f}")
