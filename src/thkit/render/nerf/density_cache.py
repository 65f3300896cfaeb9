"""A density grid sampled once from a trained field: it places the samples of whole-frame renders.

Coarse-to-fine sampling (`thkit.render.nerf.sampling`) spends most of its field evaluations on the
coarse pass, whose densities only decide where the fine samples go. For a trained head those
densities hardly change from frame to frame: the audio and the blink reach the density only
through gates that open at the mouth and the eyes. So rendering without gradient can read the
coarse densities from this grid instead: the field's density at the centre of every cell of a
`resolution`^3 grid over the box, under conditions the renderer chooses (neutral ones), sampled
once; cells the occupancy grid marks empty hold 0. A point reads the cell it falls in: a trilinear
read (`grid_sample`) was the largest single cost of a frame on a CPU, for 0.015 dB PSNR. The fine
samples are still evaluated with each frame's own conditions, and the PDF's padding keeps some of
them spread over the whole occupied stretch, so a mouth that opens wider than the neutral one is
still found. On the demo subject, fine samples placed from a 128^3 grid render the validation
frames within 0.03 dB PSNR of the field's own coarse pass.

The grid is derived data, not state: it is not saved with the weights, and it is sampled again
whenever the renderer's `key` changes (the renderer folds in its parameters' versions, so a
training step, loaded weights or a move to another device all refresh it).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import torch
from jaxtyping import Bool, Float
from torch import Tensor, nn

BUILD_CHUNK = 65536  # cells evaluated at once while sampling the grid


class DensityCache(nn.Module):
    def __init__(self, resolution: int, bound: float) -> None:
        super().__init__()
        self.resolution = resolution
        self.bound = bound
        self.register_buffer("density", torch.zeros(0, 0, 0), persistent=False)  # [G, G, G], x y z; empty until sampled
        self._key: Hashable = None

    @torch.no_grad()
    def refresh(
        self,
        key: Hashable,
        density_fn: Callable[[Float[Tensor, "P 3"]], Float[Tensor, "P"]],
        occupied: Callable[[Float[Tensor, "P 3"]], Bool[Tensor, "P"]],
    ) -> None:
        """Sample `density_fn` at the centres of the `occupied` cells, unless the grid was sampled under `key`."""
        if key == self._key and self.density.numel():
            return
        g = self.resolution
        axis = (torch.arange(g, device=self.density.device, dtype=torch.float32) + 0.5) * (2 * self.bound / g) - self.bound
        centres = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
        cells = occupied(centres).nonzero().squeeze(-1)
        density = torch.zeros(g**3, device=centres.device)
        for start in range(0, len(cells), BUILD_CHUNK):
            part = cells[start : start + BUILD_CHUNK]
            density[part] = density_fn(centres[part]).float()
        self.density = density.reshape(g, g, g)
        self._key = key

    def forward(self, points: Float[Tensor, "*S 3"]) -> Float[Tensor, "*S 1"]:
        """The density of the cell each point falls in (a point past the box's faces reads the cell at the face)."""
        g = self.resolution
        cells = ((points + self.bound) * (g / (2 * self.bound))).floor_().clamp_(0, g - 1)
        strides = torch.tensor([g * g, g, 1], dtype=cells.dtype, device=cells.device)  # flat index: exact in float32 below 2^24 cells
        return self.density.reshape(-1).take((cells @ strides).long())[..., None]


def weights_key(module: nn.Module, *tensors: Tensor) -> Hashable:
    """A key that changes whenever `module`'s parameters or any of `tensors` change (in place or replaced)."""
    return tuple((t.data_ptr(), t._version) for t in (*module.parameters(), *tensors))
