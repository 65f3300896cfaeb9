"""Each hook of the `thkit` hook spec, exercised through a registered plugin."""

import click
import pytest
from click.testing import CliRunner

from thkit import cli as cli_module
from thkit.core import Accepts, Audio, Component, Params, Seq, hookimpl, hooks, registry
from thkit.core.graph import load_graph

SPEC = """\
thkit: 1
name: hooked
data: {synthetic: {}}
nodes:
  runtime: {kind: encoder, type: made-at-runtime, params: {dim: 3}, inputs: {audio: $audio}}
  mel: {kind: encoder, type: mel, inputs: {audio: $audio}}
"""


class RuntimeParams(Params):
    dim: int = 2


class RuntimeEncoder(Component):
    kind = "encoder"
    Params = RuntimeParams
    inputs = {"audio": Accepts(Audio)}

    def outputs(self):
        return {"features": Seq(self.params.dim, self.context.video_fps)}

    def build(self):
        import torch

        return torch.nn.Identity()


class Plugin:
    def __init__(self):
        self.built = []

    @hookimpl
    def register_components(self, register):
        register(RuntimeEncoder, "made-at-runtime")

    @hookimpl
    def check_graph(self, graph):
        if "mel" in graph.nodes and graph.nodes["mel"].outputs["features"].dim != 80:
            return [graph.problem(["nodes", "mel", "params"], "this lab only uses 80 mel bands")]
        return []

    @hookimpl
    def node_built(self, name, component, module):
        self.built.append((name, type(component).__name__, type(module).__name__))

    @hookimpl
    def register_commands(self, cli):
        @cli.command(name="hello")
        @click.argument("who")
        def hello(who):
            """Say hello (added by a plugin)."""
            click.echo(f"hello {who}")


@pytest.fixture
def plugin():
    registry.reset()
    instance = Plugin()
    hooks.plugin_manager().register(instance, name="test-plugin")
    yield instance
    hooks.plugin_manager().unregister(instance)
    cli_module.cli.commands.pop("hello", None)
    registry.reset()


def test_register_components_adds_a_runtime_component(plugin):
    entry = registry.registry().entry("encoder", "made-at-runtime")
    assert entry is not None and entry.load() is RuntimeEncoder
    graph = load_graph("hooked.yaml", text=SPEC)
    assert graph.nodes["runtime"].outputs["features"].dim == 3


def test_check_graph_problems_are_reported_with_positions(plugin):
    from thkit.core.errors import SpecError

    with pytest.raises(SpecError) as caught:
        load_graph("hooked.yaml", text=SPEC, overrides=["nodes.mel.params.n_mels=40"])
    assert [p.format() for p in caught.value.problems] == [
        "--set nodes.mel.params.n_mels=40: nodes.mel.params: this lab only uses 80 mel bands"
    ]


def test_node_built_runs_once_per_node_in_order(plugin):
    load_graph("hooked.yaml", text=SPEC).build_modules()
    assert plugin.built == [("runtime", "RuntimeEncoder", "Identity"), ("mel", "MelEncoder", "MelModule")]


def test_register_commands_adds_a_cli_command(plugin):
    hooks.plugin_manager().hook.register_commands(cli=cli_module.cli)
    result = CliRunner().invoke(cli_module.cli, ["hello", "world"])
    assert result.exit_code == 0 and result.output == "hello world\n"


def test_every_hook_has_a_docstring_and_a_test():
    """Like datasette: a hook without documentation or a test fails the suite."""
    import inspect
    import sys

    source = inspect.getsource(sys.modules[__name__])
    names = [name for name in dir(hooks.HookSpecs) if not name.startswith("_")]
    assert 0 < len(names) <= 5
    for name in names:
        assert (getattr(hooks.HookSpecs, name).__doc__ or "").strip(), f"hook {name} lacks a docstring"
        assert f"def test_{name}" in source, f"hook {name} lacks a test"
