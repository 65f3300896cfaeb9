"""`styleunet-torso`: a style-modulated UNet that draws the torso and neck behind the head renderer.

The decoupled Gaussian-landmark paper's torso (Ma, Cao, Zhang, CVM 2025, after StyleAvatar's
StyleUNet): an image-space encoder-decoder whose decoder convolutions are modulated by a per-frame
style, here computed from the frame's pose and a per-frame latent code. It plugs in where
`torso-2d` does: inputs `head` (the head renderer's rgba at the same pixels) and `pose`; output
`rgba` = head over torso (premultiplied), with `reg_entropy` (torso alpha entropy) for the trainer.

Renderers are called on any set of pixels (scattered rays or lip patches while training, whole
frames or chunks of rows while rendering), so the UNet cannot read the whole head render: it runs
on a canvas over the whole frame made from the pose alone (projected head anchors, pixel
coordinates and a learned constant image), and its output is sampled at the requested pixels,
where a small per-pixel network also reads the head's rgba. A pixel's colour then does not depend
on which other pixels are drawn with it. Details and reasons: `thkit.plugins.renderers._styleunet_torso_module`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, model_validator

from thkit.core import Params
from thkit.plugins.renderers.torso_contract import TorsoRenderer

if TYPE_CHECKING:
    from torch import nn


class StyleUnetTorsoParams(Params):
    resolution: int = Field(128, ge=4, description="side of the square canvas the UNet draws the whole frame on; sampled bilinearly at the pixels")
    levels: int = Field(3, ge=1, description="times the UNet halves the canvas (resolution must be divisible by 2^levels)")
    channels: int = Field(8, ge=1, description="feature channels at the canvas's full resolution, doubled at each level down")
    style_dim: int = Field(64, ge=1, description="width of the style that modulates the decoder's convolutions")
    anchors: int = Field(5, ge=1, description="learned points attached to the head whose projections mark where head and neck are")
    anchor_width: float = Field(0.1, gt=0, description="width of the blob drawn at each projected anchor, in image half-widths")
    constant_channels: int = Field(8, ge=0, description="channels of the learned constant canvas (StyleGAN's constant input); 0 = none")
    features: int = Field(16, ge=1, description="feature channels the UNet outputs, sampled at each pixel")
    hidden: int = Field(32, ge=1, description="width of the per-pixel MLP (UNet features, head rgba) -> torso rgba")
    latent_dim: int = Field(8, ge=0, description="per-frame latent code, part of the style; 0 = none")

    @model_validator(mode="after")
    def _divisible(self) -> StyleUnetTorsoParams:
        if self.resolution % 2**self.levels:
            raise ValueError(f"resolution {self.resolution} must be divisible by 2^levels = {2**self.levels}")
        return self


class StyleUnetTorso(TorsoRenderer):
    """StyleUNet-like torso: pose-styled UNet over the frame, head composited over it -> rgba."""

    Params = StyleUnetTorsoParams

    def build(self) -> nn.Module:
        from thkit.plugins.renderers._styleunet_torso_module import StyleUnetTorsoModule

        p = self.params
        return StyleUnetTorsoModule(
            n_frames=self.context.n_frames,
            resolution=p.resolution,
            levels=p.levels,
            channels=p.channels,
            style_dim=p.style_dim,
            anchors=p.anchors,
            anchor_width=p.anchor_width,
            constant_channels=p.constant_channels,
            features=p.features,
            hidden=p.hidden,
            latent_dim=p.latent_dim,
        )
