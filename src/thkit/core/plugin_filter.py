"""Which installed plugins may load: entry points and the THKIT_PLUGINS / THKIT_DISABLE_PLUGINS switches.

`THKIT_PLUGINS=a,b` allows only those; `THKIT_DISABLE_PLUGINS=a,b` blocks those. Each name matches a
component or hook-plugin name, or a distribution name (so `THKIT_DISABLE_PLUGINS=thkit-encoder-example`
blocks everything that package brings).
"""

from __future__ import annotations

import os
import re
from importlib.metadata import EntryPoint, entry_points


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _names(variable: str) -> set[str] | None:
    raw = os.environ.get(variable)
    if raw is None or not raw.strip():
        return None
    return {normalise(part) for part in raw.split(",") if part.strip()}


def allowed(name: str, distribution: str) -> bool:
    keys = {normalise(name), normalise(distribution)}
    only = _names("THKIT_PLUGINS")
    blocked = _names("THKIT_DISABLE_PLUGINS") or set()
    if only is not None and not keys & only:
        return False
    return not keys & blocked


def entry_points_of(group: str) -> list[tuple[EntryPoint, str]]:
    """Entry points of a group with their distribution's name ("" when unknown)."""
    found = []
    for entry_point in entry_points(group=group):
        distribution = entry_point.dist.name if entry_point.dist is not None else ""
        found.append((entry_point, distribution))
    return found
