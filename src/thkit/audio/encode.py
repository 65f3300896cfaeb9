"""`thkit encode`: run a spec's audio part on a file and save every node's outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from thkit.audio.decode import load_audio
from thkit.core.errors import ThkitError
from thkit.core.graph import Graph
from thkit.core.ports import Port
from thkit.core.runner import run_nodes
from thkit.core.timebase import Timeline, format_rate

AUDIO_KINDS = ("encoder", "fusion")


def encode_audio(graph: Graph, audio_path: str | Path) -> dict[str, tuple[Port, np.ndarray]]:
    """'node.port' -> (port, array) for every encoder and fusion node fed by `$audio`."""
    names = graph.upstream_closed(AUDIO_KINDS)
    if not names:
        raise ThkitError(f"spec '{graph.spec.name}' has no encoder or fusion nodes to run on audio")
    audio = load_audio(audio_path, graph.context.sample_rate)
    timeline = Timeline(audio.shape[0], graph.context.sample_rate)
    modules = graph.build_modules(names)
    outputs = run_nodes(graph, modules, {"audio": torch.from_numpy(audio)}, timeline)
    return {str(ref): (graph.port(ref), tensor.cpu().numpy()) for ref, tensor in outputs.items()}


def save_npz(results: dict[str, tuple[Port, np.ndarray]], path: str | Path) -> None:
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
