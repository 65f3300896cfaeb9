"""Spec checks of the training stages' losses, as a `check_graph` hook plugin (imports no torch).

Registered as thkit's built-in hook plugin `train`, so a spec whose stages cannot train fails
validation (`thkit build SPEC --check`) before anything is built:

- an unknown loss name (with a "did you mean"), or a negative weight;
- `lpips` when its AlexNet weights are not on this machine (the message says where to put them);
- a stage whose terms read pixels in a graph without renderers, `landmarks` without a landmark
  predictor to train, or `sync` mixed with other terms or training anything but sync encoders;
- a stage that trains no node.
"""

from __future__ import annotations

from thkit.core.errors import Problem, did_you_mean, listing
from thkit.core.graph import Graph
from thkit.core.hooks import hookimpl
from thkit.core.spec import StageSpec
from thkit.train import lpips
from thkit.train.losses import LOSSES, default_losses, landmark_outputs


@hookimpl
def check_graph(graph: Graph) -> list[Problem]:
    """Problems with the losses of every training stage."""
    if graph.spec.train is None:
        return []
    problems: list[Problem] = []
    for index, stage in enumerate(graph.spec.train.stages):
        problems.extend(_stage_problems(graph, ("train", "stages", index), stage))
    return problems


def _stage_problems(graph: Graph, base: tuple, stage: StageSpec) -> list[Problem]:
    problems = []

    def add(path: tuple, message: str, *, key: bool = False) -> None:
        problems.append(graph.positions.problem((*base, *path), message, key=key))

    if not stage.train:
        add(("train",), f"stage '{stage.name}' trains no node; list the nodes it trains (nodes: {listing(graph.nodes)})")
    losses = default_losses(graph, stage)
    for name, weight in stage.losses.items():
        if name not in LOSSES:
            add(("losses", name), f"unknown loss '{name}'{did_you_mean(name, LOSSES)}; losses: {listing(LOSSES)}", key=True)
        elif weight < 0:
            add(("losses", name), f"loss weight must be 0 or more, got {weight}")
    known = {name: LOSSES[name] for name in losses if name in LOSSES}
    if "lpips" in known and (missing := lpips.missing_weights()) is not None:
        add(("losses", "lpips"), missing, key=True)
    renderers = [name for name, node in graph.nodes.items() if node.spec.kind == "renderer"]
    reading = [name for name, loss in known.items() if loss.renders]
    if reading and not renderers:
        add(("losses",), f"{', '.join(repr(n) for n in reading)} compare rendered pixels, and this spec has no renderer node")
    if not any(landmark_outputs(graph, name) for name in stage.train if name in graph.nodes):
        for name in (name for name, loss in known.items() if loss.landmarks):
            add(("losses", name), f"stage '{stage.name}' trains no node with a Landmarks(68, 3) output for the {name} loss", key=True)
    if "sync" in known:
        others = [name for name in known if name != "sync"]
        if others:
            add(("losses",), f"the sync loss is fitted by its own loop and cannot share a stage with {listing(others)}; give them a stage of their own")
        for position, name in enumerate(stage.train):
            node = graph.nodes.get(name)
            if node is not None and not hasattr(node.component, "build_visual"):
                add(("train", position), f"'{name}' ({node.spec.type}) is not a sync encoder; the sync loss fits sync encoders only")
    return problems
