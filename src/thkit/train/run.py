"""The run folder: everything one training run leaves, written so that a kill loses at most the steps
since the last checkpoint.

```
RUN/
  spec.yaml                  the resolved spec: overrides applied, data: {dataset: <absolute path>}
  run.json                   thkit version, spec name, dataset, options, each stage's steps done, global step
  weights.safetensors        every node's state dict, keys `<node>.<param>`, but for weights a node
                             loads itself and does not train (a frozen pretrained HuBERT): their
                             digests are in its metadata (`external_weights`)
  state/tensors.safetensors  optimizer moments, RNG states (torch, the ray sampler's, numpy's key),
                             auxiliary modules (`aux.<node>.visual.<param>`: a sync encoder's mouth encoder)
  state/state.json           the stage and step the state belongs to, the optimizer's param groups and
                             scalar state, numpy's and Python's RNG scalars
  metrics.jsonl              one JSON object per logged step: step (global), stage, stage_step, loss,
                             terms, psnr, lr
  tb/                        TensorBoard event files
  preview.mp4                validation frames (rendered | ground truth), H.264
```

Nothing is pickled: tensors go to safetensors, structure and scalars to JSON (an optimizer's state
dict is flattened into both). Every file is written under a temporary name and renamed into place.
A checkpoint (run.json, weights, state, metrics) is several files that must change together, so it
is committed through a journal: all files are written as `.name.partial`, then `.commit.json`
(listing them) is renamed into place (the commit point), then each is renamed over its final name.
Opening a folder finishes a committed checkpoint whose renames were interrupted and discards the
partial files of one that was never committed. TensorBoard appends its own event files; a resumed
run tells it to drop the events logged after the checkpoint.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from thkit import __version__
from thkit.core.errors import ThkitError
from thkit.data.layout import atomic_write_bytes

FORMAT = 1
SPEC, RECORD, WEIGHTS, METRICS, PREVIEW, TENSORBOARD = "spec.yaml", "run.json", "weights.safetensors", "metrics.jsonl", "preview.mp4", "tb"
STATE_TENSORS, STATE_JSON = "state/tensors.safetensors", "state/state.json"
JOURNAL = ".commit.json"
EXTERNAL = "external"  # weights metadata: {"<node>.<prefix>": digest} of entries left out (`external_weights`)
ENTRIES = (SPEC, RECORD, WEIGHTS, METRICS, PREVIEW, TENSORBOARD, "state")  # what `clear()` may delete


@dataclass
class Checkpoint:
    """What a checkpoint saves besides the weights; `tensors` and `meta` are the state/ files."""

    tensors: dict[str, Tensor]
    meta: dict[str, Any]


class RunFolder:
    """A run folder (see the module docstring); `open()` recovers an interrupted checkpoint first."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, name: str) -> Path:
        return self.root / name

    @property
    def is_run(self) -> bool:
        return self.path(RECORD).is_file()

    @property
    def is_unstarted(self) -> bool:
        """Absent, empty, or holding only what a run writes before its first checkpoint (it was killed then)."""
        if not self.root.exists():
            return True
        return not self.is_run and all(path.name in (*ENTRIES, JOURNAL) or path.name.endswith(".partial") for path in self.root.iterdir())

    def open(self) -> RunFolder:
        """Create the folder, finish or discard an interrupted checkpoint; returns self."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._roll_forward()
        for folder in (self.root, self.path("state")):
            for partial in folder.glob(".*.partial"):
                partial.unlink()
        return self

    def clear(self) -> None:
        """Delete what a run writes (and nothing else that may be in the folder)."""
        for name in (*ENTRIES, JOURNAL):
            target = self.path(name)
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)

    # -- plain files -------------------------------------------------------------------------

    def read_record(self) -> dict[str, Any]:
        try:
            return json.loads(self.path(RECORD).read_text())
        except (OSError, ValueError) as error:
            raise ThkitError(f"{self.path(RECORD)}: unreadable ({error})", hint="start over with --force") from None

    def write_spec(self, text: str) -> None:
        atomic_write_bytes(self.path(SPEC), text.encode())

    def read_metrics(self, up_to_step: int) -> list[str]:
        """Logged lines at or before global step `up_to_step` (later ones belong to lost steps)."""
        if not self.path(METRICS).is_file():
            return []
        lines = self.path(METRICS).read_text().splitlines()
        return [line for line in lines if line and json.loads(line)["step"] <= up_to_step]

    # -- checkpoints -------------------------------------------------------------------------

    def commit(self, writers: Mapping[str, Callable[[Path], None]]) -> None:
        """Write several files as one: after a kill at any moment, all of them or none are new."""
        for name, write in writers.items():
            final = self.path(name)
            final.parent.mkdir(parents=True, exist_ok=True)
            partial = _partial(final)
            write(partial)
            with partial.open("rb+") as file:
                os.fsync(file.fileno())
        atomic_write_bytes(self.path(JOURNAL), json.dumps(list(writers)).encode())
        self._roll_forward()

    def _roll_forward(self) -> None:
        journal = self.path(JOURNAL)
        if not journal.is_file():
            return
        for name in json.loads(journal.read_text()):
            partial = _partial(self.path(name))
            if partial.exists():
                os.replace(partial, self.path(name))
        journal.unlink()

    def save(self, record: dict[str, Any], modules: Mapping[str, nn.Module], checkpoint: Checkpoint, metrics: list[str]) -> None:
        """Commit one checkpoint: run.json, weights, state/ and metrics together.

        Weights a module loads itself at build and does not train (its `external_weights()`, e.g. a
        frozen pretrained HuBERT) are left out; their digests are kept in the file's metadata.
        """
        weights: dict[str, Tensor] = {}
        left_out: dict[str, str] = {}
        for node, module in modules.items():
            external = external_weights(module)
            left_out.update({f"{node}.{prefix}": digest for prefix, digest in external.items()})
            weights.update({f"{node}.{key}": value for key, value in module.state_dict().items() if not key.startswith(tuple(external))})
        metadata = {"format": str(FORMAT), "thkit": __version__, "spec": str(record.get("spec", "")), EXTERNAL: json.dumps(left_out)}
        self.commit(
            {
                WEIGHTS: lambda path: save_file(_plain(weights), path, metadata=metadata),
                STATE_TENSORS: lambda path: save_file(_plain(checkpoint.tensors), path),
                STATE_JSON: lambda path: path.write_text(json.dumps(checkpoint.meta)),
                METRICS: lambda path: path.write_text("".join(line + "\n" for line in metrics)),
                RECORD: lambda path: path.write_text(json.dumps(record, indent=2) + "\n"),
            }
        )

    def load_weights(self, modules: Mapping[str, nn.Module]) -> None:
        """Load weights.safetensors into `modules` (every node of the file that `modules` has).

        Entries the file left out as external (see `save`) stay as the module loaded them at build,
        after a check that they are the weights the run was trained with.
        """
        weights, metadata = self._read(WEIGHTS)
        left_out = json.loads(metadata.get(EXTERNAL, "{}"))
        by_node: dict[str, dict[str, Tensor]] = {}
        for key, value in weights.items():
            node, _, name = key.partition(".")
            by_node.setdefault(node, {})[name] = value
        for node, module in modules.items():
            what = f"node '{node}' in {self.path(WEIGHTS)}"
            prefixes = tuple(key.partition(".")[2] for key in left_out if key.partition(".")[0] == node)
            for prefix, digest in external_weights(module).items():
                if prefix in prefixes and left_out[f"{node}.{prefix}"] != digest:
                    raise ThkitError(
                        f"{what}: the weights node '{node}' loads at build ({prefix}*) are not those the run was trained with",
                        hint=f"point node '{node}''s weights at the checkpoint the run was trained with, or train again with --force",
                    )
            if node in by_node or prefixes:
                _load_module(module, by_node.get(node, {}), what, prefixes)

    def load_state(self) -> Checkpoint:
        try:
            meta = json.loads(self.path(STATE_JSON).read_text())
        except (OSError, ValueError) as error:
            raise ThkitError(f"{self.path(STATE_JSON)}: unreadable ({error})", hint="start over with --force") from None
        return Checkpoint(self._tensors(STATE_TENSORS), meta)

    def _tensors(self, name: str) -> dict[str, Tensor]:
        return self._read(name)[0]

    def _read(self, name: str) -> tuple[dict[str, Tensor], dict[str, str]]:
        """The tensors of safetensors file `name` and its metadata, read in one opening."""
        try:
            with safe_open(self.path(name), "pt") as file:
                return {key: file.get_tensor(key) for key in file.keys()}, file.metadata() or {}
        except (OSError, SafetensorError) as error:
            raise ThkitError(f"{self.path(name)}: unreadable ({error})", hint="start over with --force") from None


def _partial(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial")


def _plain(tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Detached contiguous CPU copies: safetensors refuses tensors that share memory (tied weights)."""
    return {key: value.detach().to("cpu", copy=True).contiguous() for key, value in tensors.items()}


def external_weights(module: nn.Module) -> dict[str, str]:
    """{state-dict key prefix: digest} of the weights `module` loads itself at build and does not train.

    A module opts in by defining `external_weights()` (a frozen pretrained backbone): a run's
    weights file then leaves those entries out, so it does not carry a copy of, say, a 1.2 GB
    HuBERT-large at every checkpoint. The digest is of the weights as their source holds them.
    """
    method = getattr(module, "external_weights", None)
    return dict(method()) if callable(method) else {}


def _load_module(module: nn.Module, state: Mapping[str, Tensor], what: str, left_out: tuple[str, ...] = ()) -> None:
    """Load `state` strictly, except that entries under the `left_out` prefixes may be missing."""
    try:
        missing, unexpected = module.load_state_dict(dict(state), strict=not left_out)
    except RuntimeError as error:
        raise ThkitError(f"{what} does not fit the spec's module: {error}", hint="start over with --force") from None
    missing = [key for key in missing if not key.startswith(left_out)]
    if missing or unexpected:
        raise ThkitError(
            f"{what} does not fit the spec's module: missing keys {missing[:5]}, unexpected keys {unexpected[:5]}",
            hint="start over with --force",
        )


def aux_tensors(visuals: Mapping[str, nn.Module]) -> dict[str, Tensor]:
    return {f"aux.{node}.visual.{key}": value for node, module in visuals.items() for key, value in module.state_dict().items()}


def load_aux(visuals: Mapping[str, nn.Module], tensors: Mapping[str, Tensor]) -> None:
    for node, module in visuals.items():
        prefix = f"aux.{node}.visual."
        state = {key.removeprefix(prefix): value for key, value in tensors.items() if key.startswith(prefix)}
        if state:
            _load_module(module, state, f"the mouth encoder of '{node}'")


def optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """An optimizer's state dict as safetensors-ready tensors and JSON-ready structure."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, Tensor):
                tensors[f"optimizer.{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def load_optimizer_state(optimizer: torch.optim.Optimizer, tensors: Mapping[str, Tensor], meta: Mapping[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for index, entry in meta["scalars"].items():
        state.setdefault(int(index), {}).update(entry)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def rng_state(sampler: torch.Generator) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Every random stream a step may draw from: torch's (and CUDA's), the ray sampler's, numpy's, Python's."""
    tensors = {"rng.torch": torch.get_rng_state(), "rng.sampler": sampler.get_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{index}"] = state
    name, keys, position, has_gauss, gauss = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(keys.astype(np.int64))
    version, internal, gauss_next = random.getstate()
    meta = {"numpy": [name, int(position), int(has_gauss), float(gauss)], "python": [version, list(internal), gauss_next]}
    return tensors, meta


def load_rng_state(sampler: torch.Generator, tensors: Mapping[str, Tensor], meta: Mapping[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    sampler.set_state(tensors["rng.sampler"])
    cuda = sorted((key for key in tensors if key.startswith("rng.cuda.")), key=lambda key: int(key.rsplit(".", 1)[1]))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[key] for key in cuda])
    name, position, has_gauss, gauss = meta["numpy"]
    np.random.set_state((name, tensors["rng.numpy"].numpy().astype(np.uint32), position, has_gauss, gauss))
    version, internal, gauss_next = meta["python"]
    random.setstate((version, tuple(internal), gauss_next))


def write_video(path: Path, frames: Sequence[np.ndarray], fps: Fraction) -> None:
    """An H.264 mp4 of uint8 RGB frames [H, W, 3] (padded to even sizes), written under a temporary name."""
    import av

    height, width = frames[0].shape[:2]
    partial = _partial(path)
    with av.open(str(partial), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = width + width % 2, height + height % 2
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18"}
        for frame in frames:
            padded = np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(padded), format="rgb24")))
        container.mux(stream.encode(None))
    os.replace(partial, path)
