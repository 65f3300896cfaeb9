"""A graph run on one subject: sequence nodes on the whole clip, renderers on pixel batches.

Sequence nodes (encoders, fusions, conditioners) run on the whole clip, so every frame's code sees
the context its windows need; renderers then take the rows of the batch's frames. Encoders that
are not training are served from the dataset's feature cache (`thkit.audio.cache`); the others run
every time, with gradients when they train.

Renderers are called through the contract of `thkit.core.pixels`, in graph order. A renderer input
fed by another renderer's `Frames` output gets that renderer's `rgba` at the same pixels, one fed by
`$frame` the ground truth there (alpha 1). Inputs at another rate than the video's are pooled onto
video frames first (`thkit.core.align.pool_to_frames`).

`feeds` (a stage's `feed:`) replace an edge's source while the stage trains: every input reading the
replaced `node.port` reads the feed's source instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn

from thkit.audio.cache import FeatureCache, cached_encode
from thkit.core.align import pool_to_frames
from thkit.core.errors import ThkitError
from thkit.core.graph import Graph, Node, Ref
from thkit.core.runner import run_nodes
from thkit.core.timebase import Timeline
from thkit.train.subject import RayBatch, Subject

SEQUENCE_KINDS = ("encoder", "fusion", "conditioning")
Feeds = Mapping[Ref, Ref]


def parse_feeds(feed: Mapping[str, str]) -> dict[Ref, Ref]:
    """A stage's `feed:` as Refs (validation has checked every one parses)."""
    return {Ref.parse(target): Ref.parse(source) for target, source in feed.items()}  # type: ignore[misc]


def composite(rgba: Tensor, plate: Tensor) -> Tensor:
    """Premultiplied rgba [R, 4] over an opaque plate [R, 3]."""
    return rgba[:, :3] + (1 - rgba[:, 3:]) * plate


class GraphRun:
    """Runs `modules` (every node of `graph`) on `subject`; see the module docstring."""

    def __init__(self, graph: Graph, modules: Mapping[str, nn.Module], subject: Subject, cache: FeatureCache | None) -> None:
        self.graph = graph
        self.modules = modules
        self.subject = subject
        self.cache = cache
        self.renderers = [name for name, node in graph.nodes.items() if node.spec.kind == "renderer"]
        self.sequence_nodes = [name for name, node in graph.nodes.items() if node.spec.kind in SEQUENCE_KINDS]
        reads_frames = any(ref == Ref(None, "frame") for name in self.sequence_nodes for ref in graph.nodes[name].inputs.values())
        self.inputs = subject.graph_inputs(with_frames=reads_frames)
        # The dataset's transcript travels with its audio, as a sidecar does with an --audio file.
        dataset = subject.dataset
        self.timeline = Timeline(self.inputs["audio"].shape[0], graph.context.sample_rate, source=str(dataset.root / "audio.wav"), text=dataset.transcript())
        if self.timeline.frames(graph.context.video_fps) < subject.n_frames:
            raise ThkitError(f"{subject.dataset.root}: audio.wav is shorter than the video's {subject.n_frames} frames", hint="re-create the dataset")

    def encode(self, trained: Iterable[str]) -> dict[str, dict[str, Tensor]]:
        """Whole-clip outputs of the encoders not in `trained`, by node and port (cached on disk)."""
        trained = set(trained)
        frozen = [name for name in self.sequence_nodes if self.graph.nodes[name].spec.kind == "encoder" and name not in trained]
        values = cached_encode(self.graph, {name: self.modules[name] for name in frozen}, self.inputs, self.timeline, self.cache)
        encoded: dict[str, dict[str, Tensor]] = {}
        for ref, tensor in values.items():
            encoded.setdefault(ref.node, {})[ref.port] = tensor  # type: ignore[index]
        return encoded

    def sequences(self, encoded: Mapping[str, Mapping[str, Tensor]], feeds: Feeds) -> dict[Ref, Tensor]:
        """Graph inputs and every sequence node's whole-clip outputs; `encoded` nodes are not run again."""
        values: dict[Ref, Tensor] = {Ref(None, name): tensor for name, tensor in self.inputs.items()}

        def call(name: str, node: Node, module: nn.Module, inputs: dict[str, Tensor], clip: Timeline) -> dict[str, Tensor]:
            if name in encoded:
                outputs = dict(encoded[name])
            else:
                for input_name, ref in node.inputs.items():
                    if ref in feeds:
                        inputs[input_name] = self._fed(values, feeds[ref], name)
                outputs = module(inputs, clip)
            values.update({Ref(name, port): tensor for port, tensor in outputs.items()})
            return outputs

        run_nodes(self.graph, {name: self.modules[name] for name in self.sequence_nodes}, self.inputs, self.timeline, call)
        return values

    def _fed(self, values: Mapping[Ref, Tensor], source: Ref, consumer: str) -> Tensor:
        if source not in values:
            raise ThkitError(f"feed source '{source}' is not computed before '{consumer}' reads it", hint="feed from a graph input or an upstream node")
        return values[source]

    def renderers_for(self, trained: Iterable[str], feeds: Feeds) -> list[str]:
        """The renderers a stage draws: its last trained renderer (else the graph's last) and those it reads."""
        trained = set(trained)
        drawn = [name for name in self.renderers if name in trained] or self.renderers[-1:]
        needed = set(drawn[-1:])
        for name in reversed(self.renderers):
            if name in needed:
                needed.update(ref.node for ref in (feeds.get(ref, ref) for ref in self.graph.nodes[name].inputs.values()) if ref.node in self.renderers)
        return [name for name in self.renderers if name in needed]

    def render(self, batch: RayBatch, values: Mapping[Ref, Tensor], feeds: Feeds, names: Iterable[str]) -> dict[str, dict[str, Tensor]]:
        """Each renderer in `names` (graph order) on `batch`; returns their outputs by node."""
        rendered: dict[str, dict[str, Tensor]] = {}
        for name in names:
            node = self.graph.nodes[name]
            conditions = {
                input_name: self._condition(feeds.get(ref, ref), batch, values, rendered, name) for input_name, ref in node.inputs.items()
            }
            rendered[name] = self.modules[name](batch.pixels, conditions)
        return rendered

    def _condition(self, ref: Ref, batch: RayBatch, values: Mapping[Ref, Tensor], rendered: Mapping[str, dict[str, Tensor]], consumer: str) -> Tensor:
        if ref.node in self.renderers:
            if ref.node not in rendered:
                raise ThkitError(f"renderer '{consumer}' reads '{ref}', which is not drawn before it")
            return rendered[ref.node]["rgba"]
        if ref == Ref(None, "frame"):
            return torch.cat([batch.target, torch.ones_like(batch.target[:, :1])], dim=-1)
        port = self.graph.port(ref)
        full = values[ref]
        fps = getattr(port, "fps", self.graph.context.video_fps)
        if fps != self.graph.context.video_fps:
            flat = pool_to_frames(full.reshape(full.shape[0], -1), fps, self.graph.context.video_fps, self.subject.n_frames)
            full = flat.reshape(self.subject.n_frames, *full.shape[1:])
        return full[batch.pixels.frame_ids.to(full.device)]

    @torch.no_grad()
    def render_frame(self, index: int, values: Mapping[Ref, Tensor], chunk: int) -> Tensor:
        """Frame `index` as the graph draws it: its last renderer over the plate, [H, W, 3] in [0, 1]."""
        names = self.renderers_for((), {})
        frame = self.subject.full_frame(index)
        colours = []
        for start in range(0, frame.pixels.n_rays, chunk):
            part = frame.rows(start, start + chunk)
            colours.append(composite(self.render(part, values, {}, names)[names[-1]]["rgba"], part.plate))
        return torch.cat(colours).reshape(self.subject.height, self.subject.width, 3).clamp(0, 1)
