"""The component registry: one entry-point group per kind, keyed by the spec's `type:` name.

Built-ins register through thkit's own pyproject.toml exactly as a third-party distribution does.
Entries are listed from package metadata and their classes imported only when asked for; component
classes import without torch, so listing and validating never load it. A plugin that fails to
import is reported and skipped; two distributions claiming one name is an error naming both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from thkit.core import hooks
from thkit.core.component import KINDS, Component, Kind
from thkit.core.errors import ThkitError, did_you_mean, listing, with_article
from thkit.core.plugin_filter import allowed, entry_points_of

GROUPS: dict[Kind, str] = {
    "encoder": "thkit.encoders",
    "fusion": "thkit.fusion",
    "conditioning": "thkit.conditioning",
    "renderer": "thkit.renderers",
}
RUNTIME = "(registered at run time)"


@dataclass
class Entry:
    """One registered component name: where it comes from, and its class once loaded."""

    kind: Kind
    name: str
    distribution: str
    version: str
    target: str
    load_class: Callable[[], object]
    rivals: list[str] = field(default_factory=list)  # other distributions claiming the same name
    component: type[Component] | None = None
    error: str | None = None

    def load(self) -> type[Component]:
        if self.rivals:
            claimants = " and ".join(f"'{d}'" for d in [self.distribution, *self.rivals])
            raise ThkitError(
                f"{self.kind} '{self.name}' is provided by both {claimants}",
                hint="uninstall one of them, or block one with THKIT_DISABLE_PLUGINS=<distribution>",
            )
        if self.component is None and self.error is None:
            try:
                loaded = self.load_class()
            except Exception as error:  # a broken plugin must not break thkit
                self.error = f"{type(error).__name__}: {error}"
            else:
                self.error = _contract_error(loaded, self.kind, self.target)
                if self.error is None:
                    self.component = loaded  # type: ignore[assignment]
        if self.error is not None:
            raise ThkitError(
                f"{self.kind} '{self.name}' from '{self.distribution}' failed to load: {self.error}",
                hint=f"reinstall or fix '{self.distribution}', or block it with THKIT_DISABLE_PLUGINS={self.name}",
            )
        assert self.component is not None
        return self.component

    @property
    def status(self) -> str:
        if self.rivals:
            return "conflict: also in " + ", ".join(self.rivals)
        if self.error is not None:
            return f"failed: {self.error}"
        return "ok" if self.component is not None else "not loaded"


def _contract_error(loaded: object, kind: Kind, target: str) -> str | None:
    if not (isinstance(loaded, type) and issubclass(loaded, Component)):
        return f"{target} is not a thkit Component class"
    if getattr(loaded, "kind", None) != kind:
        return f"{loaded.__name__}.kind is {getattr(loaded, 'kind', None)!r}, but it is registered as {with_article(kind)}"
    return None


class Registry:
    """All components this process may use, by kind and name."""

    def __init__(self) -> None:
        self._entries: dict[tuple[Kind, str], Entry] = {}

    @classmethod
    def discover(cls) -> Registry:
        """List entry points of every kind, then let hook plugins add run-time components."""
        registry = cls()
        for kind, group in GROUPS.items():
            for entry_point, distribution in entry_points_of(group):
                if not allowed(entry_point.name, distribution):
                    continue
                version = entry_point.dist.version if entry_point.dist is not None else ""
                registry._add(Entry(kind, entry_point.name, distribution, version, entry_point.value, entry_point.load))
        hooks.plugin_manager().hook.register_components(register=registry.register)
        return registry

    def register(self, component: type[Component], name: str, distribution: str = RUNTIME) -> None:
        """Add a component class made at run time (the `register_components` hook's callback)."""
        kind = getattr(component, "kind", None)
        if kind not in KINDS:
            raise ThkitError(f"cannot register {component!r}: its `kind` must be one of {', '.join(KINDS)}")
        if not allowed(name, distribution):
            return
        target = f"{component.__module__}:{component.__qualname__}"
        self._add(Entry(kind, name, distribution, "", target, lambda: component))

    def _add(self, entry: Entry) -> None:
        key = (entry.kind, entry.name)
        existing = self._entries.get(key)
        if existing is None:
            self._entries[key] = entry
        elif existing.distribution != entry.distribution:
            existing.rivals.append(entry.distribution)
        elif existing.target != entry.target:  # e.g. two hook plugins registering one name at run time
            existing.rivals.append(f"{entry.distribution} ({entry.target})")

    def __iter__(self) -> Iterator[Entry]:
        return iter(sorted(self._entries.values(), key=lambda e: (KINDS.index(e.kind), e.name)))

    def names(self, kind: Kind) -> list[str]:
        """Names of `kind` that are not known to be broken or contested."""
        return sorted(
            name for (entry_kind, name), entry in self._entries.items() if entry_kind == kind and entry.error is None and not entry.rivals
        )

    def entry(self, kind: Kind, name: str) -> Entry | None:
        return self._entries.get((kind, name))

    def kinds_of(self, name: str) -> list[Kind]:
        return [kind for kind in KINDS if (kind, name) in self._entries]

    def get(self, kind: Kind, name: str) -> type[Component]:
        """The component class for a spec's `kind`/`type`, or a ThkitError saying what exists."""
        entry = self.entry(kind, name)
        if entry is None:
            raise ThkitError(self.unknown_message(kind, name))
        return entry.load()

    def unknown_message(self, kind: Kind, name: str) -> str:
        self.load_all()  # so that the names offered are ones that really load (classes import without torch)
        other_kinds = self.kinds_of(name)
        if other_kinds:
            return f"'{name}' is {with_article(' and '.join(other_kinds))}, not {with_article(kind)}; installed {kind}s: {listing(self.names(kind))}"
        return f"unknown {kind} type '{name}'{did_you_mean(name, self.names(kind))}; installed {kind}s: {listing(self.names(kind))}"

    def load_all(self) -> None:
        """Import every component class, recording failures instead of raising."""
        for entry in self:
            try:
                entry.load()
            except ThkitError:
                pass


_registry: Registry | None = None


def registry() -> Registry:
    """The process-wide registry, discovered on first use."""
    global _registry
    if _registry is None:
        _registry = Registry.discover()
    return _registry


def reset() -> None:
    """Forget the registry and hook plugins, e.g. after tests changed the environment."""
    global _registry
    _registry = None
    hooks.reset()
