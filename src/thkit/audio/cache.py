"""Encoder outputs cached on disk, keyed by everything they depend on, so nothing is computed twice.

An entry's key is a hash of its key parts: for an encoder node, the content of its inputs (the audio
itself, not the file name), its kind, type, params, `Component.version`, a hash of its weights (a
trained encoder is a different function) and the clip's timeline (length, rate, transcript). Change
any of them and the key changes, so a stale entry is never served; old entries are simply not
looked up again.

Each entry is one safetensors file (never pickle) holding the arrays and, as metadata, the key parts
it was made from; a hit is served only when those match exactly. Files are written to a temporary
name in the same folder and renamed into place (`os.replace` is atomic), so a process killed at any
moment leaves either the whole entry or none of it; an unreadable entry is treated as a miss and
rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save

if TYPE_CHECKING:
    from torch import Tensor, nn

    from thkit.core.graph import Graph, Ref
    from thkit.core.timebase import Timeline

CACHE_ENV = "THKIT_CACHE"
KEY_FORMAT = 1  # bump when the meaning of key parts changes
_META_KEY = "thkit.key"
_GROUP = re.compile(r"[A-Za-z0-9_-]{1,64}")


def default_cache_root() -> Path:
    """`$THKIT_CACHE`, else `~/.cache/thkit/features`: where `thkit encode` caches features."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "thkit" / "features"


def dataset_cache_root(dataset: str | Path) -> Path:
    """`<dataset>/features`: a dataset's features live with it."""
    return Path(dataset) / "features"


def canonical_json(parts: Mapping[str, Any]) -> str:
    """Key parts as one deterministic string (sorted keys, no spaces)."""
    return json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def array_digest(array: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and bytes: equal digests mean equal content."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.reshape(-1).view(np.uint8))
    return digest.hexdigest()


class FeatureCache:
    """A folder of cached feature arrays; see the module docstring."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, key_parts: Mapping[str, Any]) -> Path:
        """Where the entry for `key_parts` lives (grouped by `type` when the parts name one)."""
        key = hashlib.sha256(canonical_json(key_parts).encode()).hexdigest()
        group = str(key_parts.get("type", ""))
        group = group if _GROUP.fullmatch(group) else "misc"
        return self.root / group / key[:2] / f"{key}.safetensors"

    def get(self, key_parts: Mapping[str, Any]) -> dict[str, np.ndarray] | None:
        """The cached arrays, or None when absent, unreadable or made from other key parts."""
        try:
            with safe_open(self.path(key_parts), framework="np") as entry:
                if (entry.metadata() or {}).get(_META_KEY) != canonical_json(key_parts):
                    return None
                return {name: entry.get_tensor(name) for name in entry.keys()}
        except (OSError, SafetensorError):
            return None

    def put(self, key_parts: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        """Store `arrays` atomically: readers see the whole entry or none of it."""
        path = self.path(key_parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = save({name: np.ascontiguousarray(array) for name, array in arrays.items()}, {_META_KEY: canonical_json(key_parts)})
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(payload)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def get_or_compute(
        self, key_parts: Mapping[str, Any], compute: Callable[[], Mapping[str, np.ndarray]]
    ) -> dict[str, np.ndarray]:
        """The cached arrays for `key_parts`, computing and storing them on a miss."""
        cached = self.get(key_parts)
        if cached is not None:
            return cached
        arrays = {name: np.asarray(array) for name, array in compute().items()}
        self.put(key_parts, arrays)
        return arrays


def module_digest(module: nn.Module) -> str:
    """A module's weights' identity: its own `cache_identity()` when it has one, else `state_digest`.

    A module with large frozen weights (a pretrained HuBERT) defines `cache_identity()` to hash them
    once per process instead of on every lookup.
    """
    identity = getattr(module, "cache_identity", None)
    return identity() if callable(identity) else state_digest(module.state_dict())


def state_digest(state: Mapping[str, Tensor]) -> str:
    """sha256 over named tensors (names, dtypes, shapes, values)."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{flat.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(memoryview(flat.view(torch.uint8).numpy()))
    return digest.hexdigest()


def encoder_key(graph: Graph, name: str, input_digests: Mapping[str, str], timeline: Timeline, weights: str) -> dict[str, Any]:
    """Key parts of encoder node `name` on inputs with these content digests, over `timeline`."""
    node = graph.nodes[name]
    component = node.component
    return {
        "format": KEY_FORMAT,
        "kind": node.spec.kind,
        "type": node.spec.type,
        "version": str(component.version),
        "params": component.params.model_dump(mode="json"),
        "inputs": {
            input_name: {"port": str(node.input_ports[input_name]), "data": digest}
            for input_name, digest in sorted(input_digests.items())
        },
        "weights": weights,
        "timeline": {"n_samples": timeline.n_samples, "sample_rate": timeline.sample_rate, "text": timeline.text},
    }


def cached_encode(
    graph: Graph,
    modules: Mapping[str, nn.Module],
    inputs: Mapping[str, Tensor],
    timeline: Timeline,
    cache: FeatureCache | None,
) -> dict[Ref, Tensor]:
    """`thkit.core.runner.run_nodes`, with every encoder node's outputs served from `cache`.

    Nodes of other kinds (fusions, conditioners) are cheap and trainable, so they always run. With
    `cache=None` this is `run_nodes`.
    """
    import torch

    from thkit.core.graph import Node
    from thkit.core.runner import call_module, run_nodes

    if cache is None:
        with torch.no_grad():
            return run_nodes(graph, modules, inputs, timeline)
    digests: dict[int, str] = {}  # content digests of the tensors encoders read, by tensor id, each computed once

    def digest(tensor: Tensor) -> str:
        if id(tensor) not in digests:
            digests[id(tensor)] = array_digest(tensor.detach().cpu().numpy())
        return digests[id(tensor)]

    def call(name: str, node: Node, module: nn.Module, node_inputs: dict[str, Tensor], clip: Timeline) -> dict[str, Tensor]:
        if node.spec.kind != "encoder":
            return call_module(name, node, module, node_inputs, clip)
        input_digests = {input_name: digest(tensor) for input_name, tensor in node_inputs.items()}
        key = encoder_key(graph, name, input_digests, clip, module_digest(module))
        return _through_cache(cache, key, module, node_inputs, clip)

    with torch.no_grad():
        return run_nodes(graph, modules, inputs, timeline, call)


def _through_cache(
    cache: FeatureCache, key: Mapping[str, Any], module: nn.Module, inputs: Mapping[str, Tensor], timeline: Timeline
) -> dict[str, Tensor]:
    """The module's outputs from the cache, computed and stored on a miss, on the inputs' device."""
    import torch

    def compute() -> dict[str, np.ndarray]:
        return {port: tensor.cpu().numpy() for port, tensor in module(inputs, timeline).items()}

    device = next(iter(inputs.values())).device if inputs else torch.device("cpu")
    return {port: torch.from_numpy(array).to(device) for port, array in cache.get_or_compute(key, compute).items()}
