"""Typed ports: what flows along each edge of a graph, with its width and rate.

Ports make widths and rates explicit, so a renderer never guesses its input width from an
encoder's name. Tensor layouts (time first, no batch axis) are fixed per port type:

- Audio:      [samples] float32 mono, at `sample_rate`
- Seq:        [frames, dim] at `fps` (row i covers the time [i/fps, (i+1)/fps))
- Landmarks:  [frames, n, dims] at `fps`
- Pose:       [frames, 4, 4] camera-to-world at `fps`
- Frames:     [frames, height, width, 3] RGB in [0, 1] at `fps`
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from fractions import Fraction
from typing import ClassVar, Literal

from thkit.core.timebase import Rate, as_rate, format_rate

VIDEO = "video"  # an input requirement meaning "at the graph's video frame rate"


@dataclass(frozen=True)
class Port:
    """Base of all port types; subclasses are frozen dataclasses compared by value."""

    label: ClassVar[str] = "Port"

    def __str__(self) -> str:
        parts = []
        for item in fields(self):
            value = getattr(self, item.name)
            parts.append(format_rate(value) if isinstance(value, Fraction) else str(value))
        return f"{self.label}({', '.join(parts)})"


@dataclass(frozen=True)
class Audio(Port):
    label: ClassVar[str] = "Audio"
    sample_rate: int


@dataclass(frozen=True)
class Seq(Port):
    label: ClassVar[str] = "Seq"
    dim: int
    fps: Fraction


@dataclass(frozen=True)
class Landmarks(Port):
    label: ClassVar[str] = "Landmarks"
    n: int
    dims: int
    fps: Fraction


@dataclass(frozen=True)
class Pose(Port):
    label: ClassVar[str] = "Pose"
    fps: Fraction


@dataclass(frozen=True)
class Frames(Port):
    label: ClassVar[str] = "Frames"
    height: int
    width: int
    fps: Fraction


PortType = type[Port]


@dataclass(frozen=True)
class Accepts:
    """What an input accepts: a port type, optionally pinned in width and rate.

    `None` means "any"; `fps="video"` means the graph's video rate. The core checks these on every
    edge before anything is built; a component checks anything subtler in its `outputs()`.
    """

    port: PortType
    dim: int | None = None  # Seq.dim, or Landmarks.n
    dims: int | None = None  # Landmarks.dims
    fps: Rate | Literal["video"] | None = None
    sample_rate: int | None = None
    required: bool = True
    doc: str = ""

    def mismatches(self, actual: Port, video_fps: Fraction) -> list[str]:
        """Why `actual` cannot feed this input (empty when it can)."""
        if not isinstance(actual, self.port):
            return [f"expects {self.port.label}, got {actual}"]
        problems = []
        width = getattr(actual, "dim", getattr(actual, "n", None))
        if self.dim is not None and width != self.dim:
            problems.append(f"expects width {self.dim}, got {actual}")
        if self.dims is not None and getattr(actual, "dims", None) != self.dims:
            problems.append(f"expects {self.dims}D points, got {actual}")
        if self.sample_rate is not None and getattr(actual, "sample_rate", None) != self.sample_rate:
            problems.append(f"expects {self.sample_rate} Hz audio, got {actual}")
        if self.fps is not None:
            wanted = video_fps if self.fps == VIDEO else as_rate(self.fps)
            got = getattr(actual, "fps", None)
            if got != wanted:
                problems.append(f"expects rate {format_rate(wanted)} fps, got {actual}")
        return problems

    def describe(self) -> str:
        parts = [f"dim={self.dim}"] if self.dim is not None else []
        if self.dims is not None:
            parts.append(f"dims={self.dims}")
        if self.fps is not None:
            parts.append(f"fps={self.fps if self.fps == VIDEO else format_rate(as_rate(self.fps))}")
        if self.sample_rate is not None:
            parts.append(f"sample_rate={self.sample_rate}")
        optional = "" if self.required else " (optional)"
        constraints = f"({', '.join(parts)})" if parts else ""
        return f"{self.port.label}{constraints}{optional}"


def compatible(expected: Port, actual: Port) -> list[str]:
    """Why `actual` cannot stand in for `expected` on a substituted edge (empty when it can)."""
    if type(expected) is not type(actual):
        return [f"{actual} cannot replace {expected}: different port types"]
    if expected != actual:
        return [f"{actual} cannot replace {expected}: width or rate differs"]
    return []
