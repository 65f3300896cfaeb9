"""The component contract every encoder, fusion, conditioner and renderer follows.

A component is one class with:

- `Params`: a pydantic model (`extra="forbid"`, frozen) of everything a spec may set;
- `inputs`: the ports it accepts, by name (or `variadic_input` for "any number of these");
- `outputs()`: its output ports, computed from its params and its connected input ports;
- `build()`: the `torch.nn.Module` that maps input tensors to output tensors.

Component classes must import without torch (import it inside `build()`, or keep the network in
a sibling module that `build()` imports): listing plugins and validating a spec never load torch.

Modules of encoders, fusions and conditioners are called as `module(inputs, timeline)` with a dict
of tensors laid out as `thkit.core.ports` documents, and return a dict of tensors keyed by output
port name. Every sequence output at rate r has exactly `timeline.frames(r)` rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from thkit.core.ports import Accepts, Port

if TYPE_CHECKING:
    from torch import nn

Kind = Literal["encoder", "fusion", "conditioning", "renderer"]
KINDS: tuple[Kind, ...] = ("encoder", "fusion", "conditioning", "renderer")


class Params(BaseModel):
    """Base of every component's parameters: unknown keys are errors and values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class GraphContext:
    """Facts about the data that every component may size itself by."""

    video_fps: Fraction = Fraction(25)
    sample_rate: int = 16000
    image_size: int = 512
    n_frames: int = 0  # frames of training video, when known before building (0: not known yet)


class PortMismatch(Exception):
    """Raised by `Component.outputs()` when connected inputs do not fit; the graph reports it."""

    def __init__(self, input_name: str | None, message: str) -> None:
        super().__init__(message)
        self.input_name = input_name
        self.message = message


class Component:
    """Base class; see the module docstring for the contract."""

    kind: ClassVar[Kind]
    Params: ClassVar[type[Params]] = Params
    inputs: ClassVar[Mapping[str, Accepts]] = {}
    variadic_input: ClassVar[Accepts | None] = None
    # Bump when outputs change for the same params: cached features keyed on it are then recomputed.
    version: ClassVar[str] = "1"
    description: ClassVar[str] = ""

    def __init__(self, params: Params, inputs: Mapping[str, Port], context: GraphContext) -> None:
        self.params = params
        self.input_ports = dict(inputs)
        self.context = context

    @classmethod
    def accepts(cls, input_name: str) -> Accepts | None:
        """The requirement on a named input, or None if this component has no such input."""
        if input_name in cls.inputs:
            return cls.inputs[input_name]
        return cls.variadic_input

    def outputs(self) -> dict[str, Port]:
        raise NotImplementedError

    def build(self) -> nn.Module:
        raise NotImplementedError

    @classmethod
    def summary(cls) -> str:
        doc = cls.description or (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


def parse_params(component: type[Component], raw: Mapping[str, Any]) -> Params:
    return component.Params.model_validate(dict(raw))
