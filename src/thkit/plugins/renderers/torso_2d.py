"""`torso-2d`: ER-NeRF's image-space torso, composited behind the head renderer's output.

The torso (neck, shoulders, clothes) moves rigidly-ish with the head but is not part of the head's
3D box, so, as in ER-NeRF, it is a 2D network over pixel coordinates: anchor points attached to the
head are projected by the frame's pose, a deformation MLP offsets each pixel's coordinates from
them and a per-frame code, and multi-resolution 2D grids plus an MLP give the torso's colour and
alpha there. The result is `rgba` = head over torso (premultiplied), with `reg_entropy` (torso
alpha entropy) and `reg_deform` (squared offset) for the trainer. The head stays frozen while this
trains (its own stage). Details and reasons: `thkit.plugins.renderers._torso_2d_module`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, field_validator

from thkit.core import Params
from thkit.plugins.renderers.torso_contract import TorsoRenderer

if TYPE_CHECKING:
    from torch import nn


class Torso2dParams(Params):
    resolutions: tuple[int, ...] = Field(
        (32, 64, 128, 256), min_length=1, description="2D grid resolutions across the image, concatenated"
    )
    channels: int = Field(4, ge=1, description="feature channels per grid resolution")
    hidden: int = Field(64, ge=1, description="width of the deformation and colour MLPs")
    layers: int = Field(3, ge=2, description="layers of the deformation and colour MLPs")
    pixel_frequencies: int = Field(8, ge=0, description="sinusoid frequencies encoding pixel coordinates (ER-NeRF: 8)")
    pose_frequencies: int = Field(4, ge=0, description="sinusoid frequencies encoding the projected anchor points")
    anchors: int = Field(3, ge=1, description="learned anchor points attached to the head whose projections encode its pose (ER-NeRF: 3)")
    latent_dim: int = Field(8, ge=0, description="per-frame torso code (ER-NeRF: 8); 0 = none")

    @field_validator("resolutions")
    @classmethod
    def _at_least_two(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(r < 2 for r in value):
            raise ValueError(f"every grid resolution must be >= 2, got {list(value)}")
        return value


class Torso2d(TorsoRenderer):
    """ER-NeRF-style 2D torso: pose-conditioned deformation + 2D grids -> torso rgba, head composited over it."""

    Params = Torso2dParams

    def build(self) -> nn.Module:
        from thkit.plugins.renderers._torso_2d_module import Torso2dModule

        p = self.params
        return Torso2dModule(
            n_frames=self.context.n_frames,
            resolutions=p.resolutions,
            channels=p.channels,
            hidden=p.hidden,
            layers=p.layers,
            pixel_frequencies=p.pixel_frequencies,
            pose_frequencies=p.pose_frequencies,
            anchors=p.anchors,
            latent_dim=p.latent_dim,
        )
