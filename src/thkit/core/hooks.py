"""Plugin hooks (pluggy, project name "thkit"): few and small.

A hook plugin is any module or object with functions marked `@hookimpl`, published through the
entry-point group `thkit` (or registered on the plugin manager in tests). Component classes are not
hook plugins: they register through the per-kind entry-point groups (see `thkit.core.registry`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

from thkit.core.plugin_filter import allowed, entry_points_of

if TYPE_CHECKING:
    import click

    from thkit.core.errors import Problem
    from thkit.core.graph import Graph

hookspec = pluggy.HookspecMarker("thkit")
hookimpl = pluggy.HookimplMarker("thkit")


class HookSpecs:
    @hookspec
    def register_components(self, register: Callable[..., None]) -> None:
        """Add components made at run time.

        Runs once, when the component registry is built (the first spec validation or plugin
        listing of a process). Call `register(component_class, name)`; the kind comes from
        `component_class.kind`, and the name is what specs put in `type:`.
        """

    @hookspec
    def check_graph(self, graph: Graph) -> list[Problem] | None:
        """Add checks of your own to spec validation.

        Runs after the built-in checks of a spec found no problem, before anything is built.
        Return problems (use `graph.problem(path, message)` to locate them in the spec file).
        """

    @hookspec
    def node_built(self, name: str, component: Any, module: Any) -> None:
        """React to a built node.

        Runs once per node, right after `Graph.build_modules()` constructed its torch module, in
        graph order. `component` is the configured component; `module` its `torch.nn.Module`.
        """

    @hookspec
    def register_commands(self, cli: click.Group) -> None:
        """Add commands to the `thkit` command line.

        Runs when the `thkit` command starts, before its arguments are parsed. Call
        `cli.add_command(...)` with click commands.
        """


_manager: pluggy.PluginManager | None = None
failures: list[tuple[str, str, str]] = []  # (entry name, distribution, error) of hook plugins that failed
distributions: dict[str, str] = {}  # hook plugin name -> the distribution that published it


def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with the allowed `thkit` entry-point plugins loaded."""
    global _manager
    if _manager is None:
        manager = pluggy.PluginManager("thkit")
        manager.add_hookspecs(HookSpecs)
        for entry_point, distribution in entry_points_of("thkit"):
            if not allowed(entry_point.name, distribution):
                continue
            try:
                manager.register(entry_point.load(), name=entry_point.name)
                distributions[entry_point.name] = distribution
            except Exception as error:  # a broken plugin must not break thkit
                failures.append((entry_point.name, distribution, f"{type(error).__name__}: {error}"))
        _manager = manager
    return _manager


def reset() -> None:
    """Forget the plugin manager, e.g. after tests changed the environment."""
    global _manager
    _manager = None
    failures.clear()
    distributions.clear()
