"""Run sequence nodes (encoders, fusions, conditioners) of a graph on one clip (imports torch)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from torch import Tensor, nn

from thkit.core.graph import Graph, Node, Ref
from thkit.core.timebase import Timeline

# How one node is run: (name, node, module, its inputs, timeline) -> its outputs by port name.
NodeCall = Callable[[str, Node, nn.Module, dict[str, Tensor], Timeline], dict[str, Tensor]]


def call_module(name: str, node: Node, module: nn.Module, inputs: dict[str, Tensor], timeline: Timeline) -> dict[str, Tensor]:
    return module(inputs, timeline)


def run_nodes(
    graph: Graph,
    modules: Mapping[str, nn.Module],
    inputs: Mapping[str, Tensor],
    timeline: Timeline,
    call: NodeCall = call_module,
) -> dict[Ref, Tensor]:
    """Run `modules` in graph order on graph `inputs` (`$name` -> tensor); returns every output by Ref.

    Train/eval mode and gradient tracking are the caller's choice; `call` lets a caller wrap each
    node (the feature cache serves encoders through it).
    """
    values: dict[Ref, Tensor] = {Ref(None, name): tensor for name, tensor in inputs.items()}
    for name, node in graph.nodes.items():
        if name not in modules:
            continue
        missing = [str(ref) for ref in node.inputs.values() if ref not in values]
        if missing:
            raise ValueError(f"node '{name}' needs {', '.join(missing)}, which this run was not given")
        node_inputs = {input_name: values[ref] for input_name, ref in node.inputs.items()}
        for port_name, tensor in call(name, node, modules[name], node_inputs, timeline).items():
            values[Ref(name, port_name)] = tensor
    return {ref: tensor for ref, tensor in values.items() if ref.node is not None}
