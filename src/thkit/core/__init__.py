"""The core: spec models, ports, time alignment, registry, hooks and graph validation.

It knows no concrete component. Nothing here imports torch except `align` and module building.
"""

from thkit.core.component import Component, GraphContext, Params, PortMismatch
from thkit.core.errors import Problem, SpecError, ThkitError
from thkit.core.hooks import hookimpl
from thkit.core.ports import Accepts, Audio, Frames, Landmarks, Pose, Seq
from thkit.core.timebase import Timeline

__all__ = [
    "Accepts",
    "Audio",
    "Component",
    "Frames",
    "GraphContext",
    "Landmarks",
    "Params",
    "PortMismatch",
    "Pose",
    "Problem",
    "Seq",
    "SpecError",
    "ThkitError",
    "Timeline",
    "hookimpl",
]
