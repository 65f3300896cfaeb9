"""Volume rendering of sampled densities and colours with nerfstudio's renderers.

Colour is composited over black, which is exactly colour premultiplied by the accumulated alpha:
the layout every thkit renderer returns. Depth is the expected termination distance.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from nerfstudio.cameras.rays import RaySamples
from nerfstudio.model_components.renderers import AccumulationRenderer, DepthRenderer, RGBRenderer
from torch import Tensor, nn


@dataclass
class Composite:
    rgb: Float[Tensor, "H 3"]  # premultiplied
    alpha: Float[Tensor, "H"]
    depth: Float[Tensor, "H"]


class VolumeRenderer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rgb = RGBRenderer(background_color="black")
        self.accumulation = AccumulationRenderer()
        self.depth = DepthRenderer(method="expected")

    def forward(
        self, samples: RaySamples, weights: Float[Tensor, "H N 1"], rgb: Float[Tensor, "H N 3"]
    ) -> Composite:
        return Composite(
            rgb=self.rgb(rgb=rgb, weights=weights),
            alpha=self.accumulation(weights=weights)[:, 0],
            depth=self.depth(weights=weights, ray_samples=samples)[:, 0],
        )


def along_rays(weights: Float[Tensor, "H N 1"], values: Float[Tensor, "H N"]) -> Float[Tensor, "H"]:
    """The weighted sum of a per-sample scalar along each ray (what the ray 'sees' of it)."""
    return torch.sum(weights[..., 0] * values, dim=-1)
