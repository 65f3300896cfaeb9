"""Run sequence nodes (encoders, fusions, conditioners) of a graph on one clip (imports torch)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from thkit.core.graph import Graph, Ref
from thkit.core.timebase import Timeline


@torch.no_grad()
def run_nodes(
    graph: Graph, modules: Mapping[str, nn.Module], inputs: Mapping[str, Tensor], timeline: Timeline
) -> dict[Ref, Tensor]:
    """Run `modules` in graph order on graph `inputs` (`$name` -> tensor); returns every output by Ref."""
    values: dict[Ref, Tensor] = {Ref(None, name): tensor for name, tensor in inputs.items()}
    for name, node in graph.nodes.items():
        if name not in modules:
            continue
        module = modules[name].eval()
        node_inputs = {input_name: values[ref] for input_name, ref in node.inputs.items()}
        outputs = module(node_inputs, timeline)
        for port_name, tensor in outputs.items():
            values[Ref(name, port_name)] = tensor
    return {ref: tensor for ref, tensor in values.items() if ref.node is not None}
