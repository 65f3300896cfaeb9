"""Rays against an axis-aligned box: only the part of a ray inside the head's bounds is ever sampled.

Sampling only inside the box spends every sample where the head can be, and a ray that misses the
box costs nothing at all: it is transparent by construction (alpha 0), so the background plate or
the torso behind shows through without the network having to learn empty space around the head.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from thkit.core.pixels import PixelBatch


def intersect_box(
    origins: Float[Tensor, "R 3"],
    directions: Float[Tensor, "R 3"],
    lower: Float[Tensor, "3"],
    upper: Float[Tensor, "3"],
) -> tuple[Float[Tensor, "R"], Float[Tensor, "R"]]:
    """Distances along each ray where it enters and leaves the box (slab method); enter >= exit means a miss.

    A direction component of exactly 0 is nudged to a tiny value so that the slab of that axis
    gives +-inf (the ray is inside it for all t, or never) instead of NaN.
    """
    tiny = torch.finfo(directions.dtype).tiny
    inverse = 1.0 / directions.where(directions.abs() >= tiny, tiny)
    t_lower = (lower - origins) * inverse
    t_upper = (upper - origins) * inverse
    enter = torch.minimum(t_lower, t_upper).amax(dim=-1)
    leave = torch.maximum(t_lower, t_upper).amin(dim=-1)
    return enter, leave


@dataclass
class BoxRays:
    """The rays of a batch that cross the box, with their sampling interval; `index` maps them back."""

    origins: Float[Tensor, "H 3"]
    directions: Float[Tensor, "H 3"]
    nears: Float[Tensor, "H"]
    fars: Float[Tensor, "H"]
    slot: Int[Tensor, "H"]  # frame slot in the batch, as PixelBatch.slot
    index: Int[Tensor, "H"]  # position of each ray in the batch

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def take(self, start: int, stop: int) -> BoxRays:
        """Rays start..stop (a chunk)."""
        return self.select(slice(start, stop))

    @staticmethod
    def cat(parts: list[BoxRays], empty: BoxRays) -> BoxRays:
        """Chunks joined back into one set (`empty`'s fields, sliced to nothing, when there are none)."""
        if not parts:
            return empty.take(0, 0)
        fields = zip(*((p.origins, p.directions, p.nears, p.fars, p.slot, p.index) for p in parts), strict=True)
        return BoxRays(*(torch.cat(list(f)) for f in fields))

    def select(self, which: slice | Tensor) -> BoxRays:
        return BoxRays(self.origins[which], self.directions[which], self.nears[which], self.fars[which], self.slot[which], self.index[which])


def rays_in_box(batch: PixelBatch, bound: float, near: float, far: float) -> BoxRays:
    """The rays of `batch` that cross the cube [-bound, bound]^3, clipped to [near, far] along the ray.

    `near` is the fallback start for a camera inside the box, `far` a cap on the ray's length.
    """
    origins, directions = batch.rays()
    lower = torch.full((3,), -bound, dtype=origins.dtype, device=origins.device)
    enter, leave = intersect_box(origins, directions, lower, -lower)
    nears = enter.clamp(min=near)
    fars = leave.clamp(max=far)
    index = (fars > nears).nonzero().squeeze(-1)
    return BoxRays(origins[index], directions[index], nears[index], fars[index], batch.slot[index], index)


def at_pixels(index: Int[Tensor, "H"], values: list[Tensor], n_rays: int, shape: tuple[int, ...] = (), fill: float = 0.0) -> Tensor:
    """Per-ray values of the rendered rays (chunks whose rows follow `index`, the rays' pixels in the
    batch) put back at their pixels: [n_rays, *shape], `fill` at pixels no rendered ray belongs to."""
    out = torch.full((n_rays, *shape), fill, device=index.device)
    return out.index_put((index,), torch.cat(values)) if values else out
