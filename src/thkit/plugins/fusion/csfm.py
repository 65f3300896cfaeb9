"""`csfm`: DAMC's Cross-Synchronized Fusion Module, a content stream and a sync stream -> one code.

Each video frame gets a window of rows from each stream (at that stream's own rate), the two
windows attend to each other, each is pooled to one vector, and a learned sigmoid gate mixes the
two into `code: Seq(dim, video fps)`. DAMC publishes no internals; every design choice and its
reason is written down in `thkit.plugins.fusion._csfm_module`.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

from pydantic import Field, model_validator

from thkit.core import Accepts, Component, Params, PortMismatch, Seq
from thkit.core.timebase import format_rate

if TYPE_CHECKING:
    from torch import nn


class CsfmParams(Params):
    dim: int = Field(64, ge=1, description="width of the attention and of the output code (ER-NeRF's audio code is 64)")
    heads: int = Field(4, ge=1, description="attention heads; must divide dim")
    content_window: int = Field(
        16, ge=1, description="content rows around each video frame, at the content's rate (16 at 50 Hz = 0.32 s, ER-NeRF's window)"
    )
    sync_window: int = Field(8, ge=1, description="sync rows around each video frame, at the sync stream's rate (8 at 25 fps = 0.32 s)")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on attention weights and feed-forward hidden units (training only)")
    smooth: int = Field(0, ge=0, description="learned temporal smoothing over this many video frames (ER-NeRF uses 8); 0 = off")

    @model_validator(mode="after")
    def _heads_divide_dim(self) -> CsfmParams:
        if self.dim % self.heads:
            raise ValueError(f"heads={self.heads} must divide dim={self.dim}")
        return self


class CsfmFusion(Component):
    """Cross-Synchronized Fusion (DAMC): bidirectional windowed cross-attention + gate -> Seq(dim, video fps)."""

    kind = "fusion"
    Params = CsfmParams
    inputs = {
        "content": Accepts(Seq, doc="semantic content features (e.g. hubert), any width and rate"),
        "sync": Accepts(Seq, doc="lip-sync features (e.g. sync), any width and rate"),
    }

    def outputs(self) -> dict[str, Seq]:
        video_fps = self.context.video_fps
        for name in self.inputs:
            port = self.input_ports[name]
            window = getattr(self.params, f"{name}_window")
            if window * video_fps < port.fps:
                wanted = -(-port.fps // video_fps)  # ceil(rate / video_fps)
                raise PortMismatch(
                    name,
                    f"{name}_window={window} rows of {port} span {float(window / port.fps):.3g} s, less than one video frame "
                    f"at {format_rate(video_fps)} fps: rows between frames would never be seen; use {name}_window >= {wanted}",
                )
        return {"code": Seq(self.params.dim, video_fps)}

    def build(self) -> nn.Module:
        from thkit.plugins.fusion._csfm_module import CsfmModule, StreamSpec

        self.outputs()
        content, sync = self.input_ports["content"], self.input_ports["sync"]
        return CsfmModule(
            StreamSpec(content.dim, content.fps, self.params.content_window),
            StreamSpec(sync.dim, sync.fps, self.params.sync_window),
            Fraction(self.context.video_fps),
            dim=self.params.dim,
            heads=self.params.heads,
            dropout=self.params.dropout,
            smooth=self.params.smooth,
        )
