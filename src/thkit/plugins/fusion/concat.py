"""`concat`: align feature streams of any rates onto one frame rate and concatenate them."""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from thkit.core import Accepts, Component, Params, Seq
from thkit.core.spec import FrameRate

if TYPE_CHECKING:
    from torch import nn


class ConcatParams(Params):
    fps: FrameRate | Literal["video"] = Field("video", description="output rate; 'video' is the data's frame rate")
    smooth: int = Field(
        0, ge=0, description="learned temporal smoothing over this many output frames (ER-NeRF's AudioAttNet uses 8); 0 = off"
    )


class ConcatFusion(Component):
    """Concatenation of every input, each mean-pooled onto the output rate: Seq(sum of dims, fps)."""

    kind = "fusion"
    Params = ConcatParams
    variadic_input = Accepts(Seq, doc="any feature stream; inputs are concatenated in spec order")

    @property
    def fps(self) -> Fraction:
        return self.context.video_fps if self.params.fps == "video" else self.params.fps

    def outputs(self) -> dict[str, Seq]:
        width = sum(port.dim for port in self.input_ports.values())
        return {"code": Seq(width, self.fps)}

    def build(self) -> nn.Module:
        from thkit.plugins.fusion._concat_module import ConcatModule

        width = self.outputs()["code"].dim
        return ConcatModule({name: port.fps for name, port in self.input_ports.items()}, self.fps, width, self.params.smooth)
