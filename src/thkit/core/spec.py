"""Spec files: the pydantic models of a thkit spec (format version 1).

A spec names components by registered short names only; nothing in it is ever imported or run.
The models here check structure; `thkit.core.graph` checks everything that needs the registry.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from thkit.core.component import Kind
from thkit.core.timebase import as_rate, format_rate

SPEC_VERSION = 1
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"
REF_PATTERN = re.compile(r"^(\$(?P<input>[A-Za-z_][A-Za-z0-9_]*)|(?P<node>[A-Za-z_][A-Za-z0-9_-]*)\.(?P<port>[A-Za-z_][A-Za-z0-9_]*))$")

FrameRate = Annotated[
    Fraction,
    BeforeValidator(as_rate),
    PlainSerializer(format_rate, return_type=str),
    WithJsonSchema({"anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "string", "pattern": r"^\d+(/\d+)?$"}]}),
]


def _plain_name(value: str) -> str:
    if not re.match(NAME_PATTERN, value):
        raise ValueError(f"'{value}' is not a plain name: start with a letter and use only letters, digits, _ and -")
    return value


PlainName = Annotated[str, AfterValidator(_plain_name)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SyntheticData(Strict):
    """A generated subject with ground truth (`thkit synth`)."""

    seconds: float = Field(60.0, gt=0)
    size: int = Field(256, ge=32)
    seed: int = 0


class DataSpec(Strict):
    """Where the subject comes from: exactly one of `dataset`, `video` or `synthetic`."""

    dataset: str | None = None
    video: str | None = None
    synthetic: SyntheticData | None = None
    fps: FrameRate = Fraction(25)
    size: int | None = Field(None, ge=32, description="frame size in pixels; defaults to the source's")

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        given = [name for name in ("dataset", "video", "synthetic") if getattr(self, name) is not None]
        if len(given) != 1:
            found = ", ".join(given) if given else "none"
            raise ValueError(f"give exactly one of dataset, video or synthetic (found: {found})")
        return self

    @property
    def image_size(self) -> int:
        if self.size is not None:
            return self.size
        return self.synthetic.size if self.synthetic is not None else 512


class NodeSpec(Strict):
    """One component: its kind, its registered type name, its params and its input edges."""

    kind: Kind
    type: str

    @field_validator("type")
    @classmethod
    def _registered_name(cls, value: str) -> str:
        if not re.match(NAME_PATTERN, value):
            raise ValueError(f"'{value}' is not a component name: use a registered short name such as 'mel' (import paths are never allowed)")
        return value
    params: dict[str, Any] = Field(default_factory=dict)
    inputs: dict[str, str] = Field(default_factory=dict, description="input name -> '$graph_input' or 'node.port'")


class StageSpec(Strict):
    """One training stage: which nodes train, for how long, on which losses, with which edges fed."""

    name: PlainName
    train: list[str] = Field(default_factory=list)
    steps: int = Field(ge=0)
    losses: dict[str, float] = Field(default_factory=dict)
    lr: float | None = Field(None, gt=0)
    feed: dict[str, str] = Field(
        default_factory=dict, description="'node.port' -> '$graph_input' or 'node.port': replaces an edge during this stage"
    )


class TrainSpec(Strict):
    stages: list[StageSpec] = Field(min_length=1)


class Spec(Strict):
    """A whole spec file."""

    thkit: int = Field(description=f"spec format version; this thkit reads {SPEC_VERSION}")
    name: PlainName
    data: DataSpec
    nodes: dict[str, NodeSpec] = Field(min_length=1)
    train: TrainSpec | None = None
    outputs: dict[str, str] = Field(default_factory=dict, description="output name -> 'node.port'")

    @field_validator("thkit")
    @classmethod
    def _known_version(cls, version: int) -> int:
        if version != SPEC_VERSION:
            raise ValueError(f"unsupported spec version {version}; this thkit reads 'thkit: {SPEC_VERSION}'")
        return version
