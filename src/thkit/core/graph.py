"""Spec -> validated graph of configured components, with every port known before anything is built.

`load_graph()` collects every problem in a spec (structure, unknown types, params, references,
cycles, unconnected inputs, width and rate mismatches, stages, plugin checks) and raises them
together as one `SpecError`, each located at its file, line and column.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from thkit.core import hooks
from thkit.core.component import Component, GraphContext, PortMismatch
from thkit.core.errors import Problem, SpecError, ThkitError, did_you_mean, listing
from thkit.core.inputs import context_for, graph_inputs
from thkit.core.overrides import apply_overrides
from thkit.core.ports import Port, compatible
from thkit.core.registry import Registry, registry
from thkit.core.spec import REF_PATTERN, DataSpec, NodeSpec, Spec, StageSpec, SyntheticData, TrainSpec
from thkit.core.yamlpos import Positions, SpecPath, load_yaml, read_yaml_file

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Ref:
    """An edge's source: a graph input (`$audio`) or a node's output (`content.features`)."""

    node: str | None
    port: str

    @classmethod
    def parse(cls, text: str) -> Ref | None:
        match = REF_PATTERN.match(text) if isinstance(text, str) else None
        if match is None:
            return None
        if match["input"] is not None:
            return cls(None, match["input"])
        return cls(match["node"], match["port"])

    def __str__(self) -> str:
        return f"${self.port}" if self.node is None else f"{self.node}.{self.port}"


@dataclass
class Node:
    """A configured component: its spec, its resolved edges and its ports."""

    name: str
    spec: NodeSpec
    component: Component
    inputs: dict[str, Ref]
    outputs: dict[str, Port]

    @property
    def input_ports(self) -> dict[str, Port]:
        return self.component.input_ports


@dataclass
class Graph:
    """A spec whose every node, edge and stage has been checked; nodes are in topological order."""

    spec: Spec
    positions: Positions
    context: GraphContext
    inputs: dict[str, Port]
    nodes: dict[str, Node] = field(default_factory=dict)

    def port(self, ref: Ref) -> Port:
        return self.inputs[ref.port] if ref.node is None else self.nodes[ref.node].outputs[ref.port]

    def problem(self, path: Sequence[str | int], message: str) -> Problem:
        """A problem located in this graph's spec file (for `check_graph` hook plugins)."""
        return self.positions.problem(tuple(path), message)

    def build_modules(self, names: Iterable[str] | None = None) -> dict[str, nn.Module]:
        """Construct the torch modules of `names` (default: every node), in graph order (imports torch)."""
        wanted = set(self.nodes if names is None else names)
        built = {}
        manager = hooks.plugin_manager()
        for name, node in self.nodes.items():
            if name not in wanted:
                continue
            module = node.component.build()
            manager.hook.node_built(name=name, component=node.component, module=module)
            built[name] = module
        return built

    def computable(self, kinds: Iterable[str], given: Iterable[str]) -> list[str]:
        """Nodes of `kinds` computed from the graph inputs `given` alone (directly or via each other), in order."""
        allowed_kinds, available = set(kinds), set(given)
        chosen: list[str] = []
        for name, node in self.nodes.items():
            ready = all(ref.node in chosen if ref.node is not None else ref.port in available for ref in node.inputs.values())
            if node.spec.kind in allowed_kinds and ready:
                chosen.append(name)
        return chosen

    def to_mermaid(self) -> str:
        """The graph as Mermaid flowchart text (graph inputs as rounded boxes)."""
        lines = ["flowchart LR"]
        used_inputs = sorted({ref.port for node in self.nodes.values() for ref in node.inputs.values() if ref.node is None})
        for port in used_inputs:
            lines.append(f'    in_{port}(["${port}<br/>{self.inputs[port]}"])')
        for name, node in self.nodes.items():
            lines.append(f'    {_mermaid_id(name)}["{name}<br/>{node.spec.kind}: {node.spec.type}"]')
        for name, node in self.nodes.items():
            for input_name, ref in node.inputs.items():
                source = f"in_{ref.port}" if ref.node is None else _mermaid_id(ref.node)
                label = input_name if ref.node is None else f"{ref.port} → {input_name}"
                lines.append(f'    {source} -- "{label}" --> {_mermaid_id(name)}')
        for output_name, text in self.spec.outputs.items():
            ref = Ref.parse(text)
            if ref is not None and ref.node is not None:
                lines.append(f'    out_{output_name}[/"{output_name}"/]')
                lines.append(f'    {_mermaid_id(ref.node)} -- "{ref.port}" --> out_{output_name}')
        return "\n".join(lines) + "\n"


def _mermaid_id(name: str) -> str:
    return "n_" + name.replace("-", "_")


def load_graph(
    path: str | Path | None = None,
    *,
    text: str | None = None,
    overrides: Iterable[str] = (),
    components: Registry | None = None,
) -> Graph:
    """Read a spec (a file, or `text`), apply `--set` overrides, and validate it into a Graph."""
    if text is not None:
        data, positions = load_yaml(text, str(path or "<spec>"))
    else:
        assert path is not None
        data, positions = read_yaml_file(path)
    apply_overrides(data, positions, overrides)
    return validate(data, positions, components or registry())


def validate(data: Any, positions: Positions, components: Registry) -> Graph:
    checker = _Checker(positions, components)
    graph = checker.run(data)
    if checker.problems:
        raise SpecError(checker.problems)
    assert graph is not None
    for extra in hooks.plugin_manager().hook.check_graph(graph=graph):
        checker.problems.extend(extra or [])
    if checker.problems:
        raise SpecError(checker.problems)
    return graph


class _Checker:
    """Runs every check, keeps going after a failure, and never reports one cause twice."""

    def __init__(self, positions: Positions, components: Registry) -> None:
        self.positions = positions
        self.components = components
        self.problems: list[Problem] = []

    def add(self, path: SpecPath, message: str, *, key: bool = False) -> None:
        self.problems.append(self.positions.problem(path, message, key=key))

    # -- structure ---------------------------------------------------------------------------

    def run(self, data: Any) -> Graph | None:
        if not isinstance(data, dict):
            found = "an empty file" if data is None else f"a {type(data).__name__}"
            self.add((), f"a spec must be a mapping of keys (thkit, name, data, nodes, ...), found {found}")
            return None
        spec = self.structure(data)
        if spec is None:
            return None
        context = context_for(spec.data)
        graph = Graph(spec, self.positions, context, graph_inputs(context))
        self.wire(graph)
        self.check_outputs(graph)
        if spec.train is not None:
            self.check_stages(graph, list(enumerate(spec.train.stages)))
        return graph

    def structure(self, data: dict) -> Spec | None:
        """Validate the spec's shape; on errors, still check the parts that are sound."""
        try:
            return Spec.model_validate(data)
        except ValidationError as error:
            self.pydantic_problems(error, (), data)
        # Keep checking the sound nodes and stages so that one bad part does not hide the others.
        nodes = data.get("nodes") if isinstance(data.get("nodes"), dict) else {}
        sound_nodes = {name: node for name, node in ((n, _or_none(NodeSpec, raw)) for n, raw in nodes.items()) if node}
        data_spec = _or_none(DataSpec, data.get("data"))
        context = context_for(data_spec) if data_spec else GraphContext()
        partial = Spec.model_construct(nodes=sound_nodes, outputs={})
        graph = Graph(partial, self.positions, context, graph_inputs(context))
        self.wire(graph, skip_missing=set(nodes) - set(sound_nodes))
        train = data.get("train")
        stages = train.get("stages") if isinstance(train, dict) else None
        if isinstance(stages, list):
            self.check_stages(graph, [(index, _or_none(StageSpec, raw)) for index, raw in enumerate(stages)])
        return None

    def pydantic_problems(
        self, error: ValidationError, prefix: SpecPath, raw: Any, params: type[BaseModel] | None = None
    ) -> None:
        """One problem per location: union alternatives that all failed are merged into one message."""
        merged: dict[SpecPath, list[str]] = {}
        for detail in error.errors():
            loc = _real_path(raw, detail["loc"], missing=detail["type"] == "missing")
            path = (*prefix, *loc)
            if detail["type"] == "extra_forbidden":
                self.add(path, self.unknown_key_message(path, params), key=True)
            elif detail["type"] == "missing":
                self.add(path[:-1], f"missing required key '{path[-1]}'")
            else:
                messages = merged.setdefault(path, [])
                message = detail["msg"].removeprefix("Value error, ")
                if message not in messages:
                    messages.append(message)
        for path, messages in merged.items():
            self.add(path, "; or ".join(messages) if len(messages) > 1 else messages[0])

    def unknown_key_message(self, path: SpecPath, params: type[BaseModel] | None) -> str:
        model = params or _spec_model_at(path[:-1])
        key = str(path[-1])
        if model is None:
            return f"unknown key '{key}'"
        known = list(model.model_fields)
        what = "parameter" if params else "key"
        return f"unknown {what} '{key}'{did_you_mean(key, known)}; allowed: {listing(known)}"

    # -- nodes and edges ---------------------------------------------------------------------

    def wire(self, graph: Graph, skip_missing: set[str] = frozenset()) -> None:
        """Resolve components, params and edges, then compute ports in topological order."""
        resolved: dict[str, tuple[type[Component], Any, dict[str, Ref]]] = {}
        for name, node_spec in graph.spec.nodes.items():
            base: SpecPath = ("nodes", name)
            if REF_PATTERN.match(f"{name}.x") is None:
                self.add(base, f"node name '{name}' must start with a letter and use only letters, digits, _ and -", key=True)
                continue
            component = self.component_class(base, node_spec)
            params = self.params(base, component, node_spec) if component else None
            edges = self.edges(graph, base, name, node_spec, component, set(graph.spec.nodes) | skip_missing)
            if component is not None and params is not None and edges is not None:
                resolved[name] = (component, params, edges)
        order = self.topological_order(graph, resolved)
        for name in order:
            self.compute_ports(graph, name, *resolved[name])

    def component_class(self, base: SpecPath, node_spec: NodeSpec) -> type[Component] | None:
        entry = self.components.entry(node_spec.kind, node_spec.type)
        if entry is None:
            self.add((*base, "type"), self.components.unknown_message(node_spec.kind, node_spec.type))
            return None
        try:
            return entry.load()
        except ThkitError as error:
            self.add((*base, "type"), error.message if error.hint is None else f"{error.message}; {error.hint}")
            return None

    def params(self, base: SpecPath, component: type[Component], node_spec: NodeSpec) -> Any:
        try:
            return component.Params.model_validate(node_spec.params)
        except ValidationError as error:
            self.pydantic_problems(error, (*base, "params"), node_spec.params, component.Params)
            return None

    def edges(
        self,
        graph: Graph,
        base: SpecPath,
        name: str,
        node_spec: NodeSpec,
        component: type[Component] | None,
        node_names: set[str],
    ) -> dict[str, Ref] | None:
        edges: dict[str, Ref] = {}
        sound = True
        for input_name, text in node_spec.inputs.items():
            path = (*base, "inputs", input_name)
            if component is not None and component.accepts(input_name) is None:
                known = list(component.inputs)
                self.add(path, f"'{node_spec.type}' has no input '{input_name}'{did_you_mean(input_name, known)}; its inputs: {listing(known)}", key=True)
                sound = False
                continue
            ref = self.reference(graph, path, text, node_names)
            if ref is None:
                sound = False
            elif ref.node == name:
                self.add(path, f"cycle: '{name}' takes its own output '{text}'")
                sound = False
            else:
                edges[input_name] = ref
        if component is not None:
            for input_name, accepts in component.inputs.items():
                if accepts.required and input_name not in node_spec.inputs:
                    self.add((*base, "inputs"), f"required input '{input_name}' is not connected (expects {accepts.describe()})")
                    sound = False
            if component.variadic_input is not None and not node_spec.inputs:
                self.add((*base, "inputs"), f"'{node_spec.type}' needs at least one input (expects {component.variadic_input.describe()})")
                sound = False
        return edges if sound else None

    def reference(self, graph: Graph, path: SpecPath, text: Any, node_names: set[str]) -> Ref | None:
        ref = Ref.parse(text)
        if ref is None:
            self.add(path, f"'{text}' is not a reference; write '$input' for a graph input or 'node.port' for a node's output")
            return None
        if ref.node is None:
            if ref.port not in graph.inputs:
                names = ["$" + name for name in graph.inputs]
                self.add(path, f"unknown graph input '{text}'{did_you_mean(text, names)}; graph inputs: {listing(names)}")
                return None
        elif ref.node not in node_names:
            self.add(path, f"unknown node '{ref.node}' in '{text}'{did_you_mean(ref.node, node_names)}; nodes: {listing(node_names)}")
            return None
        return ref

    def topological_order(self, graph: Graph, resolved: Mapping[str, tuple[Any, Any, dict[str, Ref]]]) -> list[str]:
        """Nodes in dependency order; reports each cycle once; drops nodes downstream of a failure."""
        order: list[str] = []
        state: dict[str, str] = {}  # "visiting" | "done" | "failed"

        def visit(name: str, trail: list[str]) -> bool:
            if state.get(name) == "done":
                return True
            if state.get(name) == "failed" or name not in resolved:
                return False
            if state.get(name) == "visiting":
                cycle = trail[trail.index(name):] + [name]
                self.add(("nodes", name, "inputs"), "cycle: " + " -> ".join(cycle))
                for member in cycle:
                    state[member] = "failed"
                return False
            state[name] = "visiting"
            sound = True
            for ref in resolved[name][2].values():
                if ref.node is not None and not visit(ref.node, [*trail, name]):
                    sound = False
            if state.get(name) == "failed":
                return False
            state[name] = "done" if sound else "failed"
            if sound:
                order.append(name)
            return sound

        for name in graph.spec.nodes:
            visit(name, [])
        return order

    def compute_ports(self, graph: Graph, name: str, component: type[Component], params: Any, edges: dict[str, Ref]) -> None:
        base: SpecPath = ("nodes", name)
        input_ports: dict[str, Port] = {}
        sound = True
        for input_name, ref in edges.items():
            path = (*base, "inputs", input_name)
            port = self.port_of(graph, path, ref)
            if port is None:
                sound = False
                continue
            accepts = component.accepts(input_name)
            assert accepts is not None
            for mismatch in accepts.mismatches(port, graph.context.video_fps):
                self.add(path, f"'{ref}' cannot feed input '{input_name}': {mismatch}")
                sound = False
            input_ports[input_name] = port
        if not sound:
            return
        instance = component(params, input_ports, graph.context)
        try:
            outputs = instance.outputs()
        except PortMismatch as mismatch:
            path = (*base, "inputs", mismatch.input_name) if mismatch.input_name else (*base, "params")
            self.add(path, mismatch.message)
            return
        graph.nodes[name] = Node(name, graph.spec.nodes[name], instance, edges, outputs)

    def port_of(self, graph: Graph, path: SpecPath, ref: Ref) -> Port | None:
        if ref.node is None:
            return graph.inputs[ref.port]
        node = graph.nodes.get(ref.node)
        if node is None:
            return None  # the upstream node failed; its own problem is already reported
        if ref.port not in node.outputs:
            self.add(path, f"node '{ref.node}' has no output '{ref.port}'{did_you_mean(ref.port, node.outputs)}; its outputs: {_port_listing(node.outputs)}")
            return None
        return node.outputs[ref.port]

    # -- outputs and stages ------------------------------------------------------------------

    def check_outputs(self, graph: Graph) -> None:
        for output_name, text in graph.spec.outputs.items():
            path = ("outputs", output_name)
            ref = self.reference(graph, path, text, set(graph.spec.nodes))
            if ref is not None and ref.node in graph.nodes:
                self.port_of(graph, path, ref)

    def check_stages(self, graph: Graph, stages: list[tuple[int, StageSpec | None]]) -> None:
        """Check stages' node names and feeds; malformed stages (None) were reported by pydantic."""
        seen: dict[str, int] = {}
        node_names = set(graph.spec.nodes)
        for index, stage in stages:
            if stage is None:
                continue
            base: SpecPath = ("train", "stages", index)
            if stage.name in seen:
                self.add((*base, "name"), f"duplicate stage name '{stage.name}' (also stage {seen[stage.name]})")
            seen.setdefault(stage.name, index)
            for position, node_name in enumerate(stage.train):
                if node_name not in node_names:
                    self.add((*base, "train", position), f"stage '{stage.name}' trains unknown node '{node_name}'{did_you_mean(node_name, node_names)}; nodes: {listing(node_names)}")
            for target_text, source_text in stage.feed.items():
                self.check_feed(graph, (*base, "feed", target_text), target_text, source_text, node_names)

    def check_feed(self, graph: Graph, path: SpecPath, target_text: str, source_text: str, node_names: set[str]) -> None:
        target = self.reference(graph, path, target_text, node_names)
        if target is not None and target.node is None:
            self.add(path, f"feed replaces a node's output ('node.port'), not a graph input ('{target_text}')", key=True)
            return
        source = self.reference(graph, path, source_text, node_names)
        if target is None or source is None or target.node not in graph.nodes:
            return
        target_port = self.port_of(graph, path, target)
        source_port = self.port_of(graph, path, source) if source.node is None or source.node in graph.nodes else None
        if target_port is not None and source_port is not None:
            for mismatch in compatible(target_port, source_port):
                self.add(path, f"cannot feed '{source_text}' into '{target_text}': {mismatch}")


def _port_listing(outputs: Mapping[str, Port]) -> str:
    return ", ".join(f"{name}: {port}" for name, port in outputs.items()) or "(none)"


def _or_none(model: type[BaseModel], raw: Any) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError:
        return None


def _real_path(raw: Any, loc: tuple, *, missing: bool) -> SpecPath:
    """The part of a pydantic error location that names real keys and indexes in the data.

    Unions and validators add tags such as "literal['video']" or "function-after[...]" that are not
    in the file; a missing key is kept as the last part.
    """
    path: list[str | int] = []
    current = raw
    for position, part in enumerate(loc):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
        elif missing and position == len(loc) - 1:
            pass
        elif isinstance(current, dict) and isinstance(part, str) and position == len(loc) - 1 and "[" not in part and not part.startswith("function-"):
            pass  # an unknown key of this mapping
        else:
            continue
        path.append(part)
    return tuple(path)


def _spec_model_at(path: SpecPath) -> type[BaseModel] | None:
    """The spec model that validates the mapping at `path`, for listing its allowed keys."""
    if not path:
        return Spec
    section, depth = path[0], len(path)
    if section == "nodes" and depth == 2:
        return NodeSpec
    if section == "train":
        return {1: TrainSpec, 3: StageSpec}.get(depth)
    if section == "data":
        return {1: DataSpec, 2: SyntheticData}.get(depth)
    return None
