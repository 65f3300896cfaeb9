"""An occupancy grid over the head's box: which cells can hold density, so rendering skips the rest.

instant-ngp's and ER-NeRF's idea in pure torch. While training, every `every`-th forward call, the
field's density is evaluated at a jittered point in every cell, with the conditions (audio, blink)
of a random frame of the batch; the grid keeps max(decay * old, new). The max over many frames
covers every mouth shape seen, the decay lets space the field has since emptied fall out (0.8 per
refresh, where instant-ngp uses 0.95: runs here are thousands of steps, not hundreds of thousands,
so an early over-estimate must be forgotten within a few hundred). A cell is occupied when one
cell's length of its density would stop more than `alpha_threshold` of the light (haze thinner
than that renders as nothing once the grid is in use); occupied cells are dilated by one cell, so
the surface never sits at the edge of the occupied region.

`clip` shrinks rays to their occupied stretch: rays crossing no occupied cell are dropped (they
render nothing), the others start at their first occupied cell and end after their last.

The grid is a buffer: it is saved with the weights, so a trained renderer skips empty space from
its first frame. Until its first update it is not `ready` and renderers sample the whole box.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor, nn

from thkit.render.nerf.bounds import BoxRays, intersect_box

UPDATE_CHUNK = 65536  # cells evaluated at once, to bound the memory of an update
MAX_STEP_CELLS = math.sqrt(3) / 2  # clip's lookup spacing, in cells: the box's diagonal in 2 x resolution steps


class OccupancyGrid(nn.Module):
    def __init__(self, resolution: int, bound: float, *, every: int = 16, decay: float = 0.8, alpha_threshold: float = 0.01) -> None:
        super().__init__()
        self.resolution = resolution
        self.bound = bound
        self.every = every
        self.decay = decay
        cell = 2.0 * bound / resolution
        self.density_threshold = -torch.log1p(torch.tensor(-alpha_threshold)).item() / cell
        self.register_buffer("density", torch.zeros(resolution, resolution, resolution))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self._calls = 0
        self._mask: Tensor | None = None
        self._mask_version: tuple[int, int] = (-1, -1)
        self._box: tuple[Tensor, Tensor] | None = None
        self._box_of: Tensor | None = None  # the mask `_box` was computed from

    @property
    def ready(self) -> bool:
        return bool(self.updates > 0)

    def step(self, density_fn: Callable[[Float[Tensor, "P 3"]], Float[Tensor, "P"]]) -> None:
        """Count a training call; every `every`-th refreshes the grid (so a barely trained field never sets it)."""
        self._calls += 1
        if self._calls % self.every == 0:
            self.update(density_fn)

    @torch.no_grad()
    def update(self, density_fn: Callable[[Float[Tensor, "P 3"]], Float[Tensor, "P"]]) -> None:
        g = self.resolution
        device = self.density.device
        axis = torch.arange(g, device=device, dtype=torch.float32)
        cells = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
        points = (cells + torch.rand_like(cells)) / g * (2 * self.bound) - self.bound
        fresh = torch.cat([density_fn(points[i : i + UPDATE_CHUNK]) for i in range(0, len(points), UPDATE_CHUNK)])
        self.density.copy_(torch.maximum(self.density * self.decay, fresh.reshape(g, g, g).to(self.density.dtype)))
        self.updates += 1

    def mask(self) -> Bool[Tensor, "G G G"]:
        """Occupied cells, dilated by one cell (cached until the grid changes)."""
        version = (int(self.updates), self.density._version)  # changes on update and on loading weights
        if self._mask is None or self._mask_version != version or self._mask.device != self.density.device:
            occupied = (self.density > self.density_threshold).float()[None, None]
            self._mask = F.max_pool3d(occupied, kernel_size=3, stride=1, padding=1)[0, 0] > 0
            self._mask_version = version
        return self._mask

    def occupied(self, points: Float[Tensor, "*S 3"]) -> Bool[Tensor, "*S"]:
        """Whether each point lies in an occupied cell (points outside the box are not)."""
        g = self.resolution
        scaled = (points + self.bound) / (2 * self.bound) * g
        inside = ((scaled >= 0) & (scaled < g)).all(dim=-1)
        index = scaled.long().clamp(0, g - 1)
        flat = (index[..., 0] * g + index[..., 1]) * g + index[..., 2]
        return self.mask().reshape(-1)[flat] & inside

    def occupied_box(self) -> tuple[Float[Tensor, "3"], Float[Tensor, "3"]] | None:
        """World-space corners of the smallest box holding every occupied cell (of `mask`); None when none is."""
        mask = self.mask()
        if self._box_of is not mask:  # computed once per mask
            cells = mask.nonzero()
            cell = 2 * self.bound / self.resolution
            self._box = None if len(cells) == 0 else (cells.amin(dim=0) * cell - self.bound, (cells.amax(dim=0) + 1) * cell - self.bound)
            self._box_of = mask
        return self._box

    def clip(self, rays: BoxRays, chunk: int | None = None) -> BoxRays:
        """The rays that cross an occupied cell, each shortened to its occupied stretch; `chunk`
        rays at a time when given, which bounds the [rays, steps] work arrays below.

        Rays are first cut to the box around all occupied cells (`occupied_box`: a face fills a
        fraction of the head's box, so many rays miss it and the rest get shorter), then each
        interval is looked up at evenly spaced points, closer than sqrt(3)/2 of a cell (as many as
        the longest interval needs, at most 2 x resolution). Cells are dilated by one, so a point
        every sqrt(3)/2 cell finds every occupied cell a ray's surface lies in. The points are placed
        in cell units and looked up in the mask padded with one empty cell on every side, so a point
        outside the box needs no test of its own: this runs for every ray of a frame that enters
        the box, and is a handful of passes over [rays, steps].
        """
        box = self.occupied_box()
        if box is None:
            return rays.take(0, 0)
        enter, leave = intersect_box(rays.origins, rays.directions, *box)
        nears, fars = torch.maximum(rays.nears, enter), torch.minimum(rays.fars, leave)
        hit = (fars > nears).nonzero().squeeze(-1)
        rays = BoxRays(rays.origins[hit], rays.directions[hit], nears[hit], fars[hit], rays.slot[hit], rays.index[hit])
        if len(rays) == 0:
            return rays
        longest = float((rays.fars - rays.nears).max()) * self.resolution / (2 * self.bound)  # cells
        steps = min(2 * self.resolution, max(1, math.ceil(longest / MAX_STEP_CELLS)))
        if chunk is not None and len(rays) > chunk:
            return BoxRays.cat([self._march(rays.take(i, i + chunk), steps) for i in range(0, len(rays), chunk)], rays)
        return self._march(rays, steps)

    def _march(self, rays: BoxRays, steps: int) -> BoxRays:
        """`clip`'s lookup of `steps` points along each ray, and the stretch from the first occupied to the last."""
        g = self.resolution
        side = g + 2  # the mask padded with one empty cell on every side
        padded = F.pad(self.mask(), (1, 1, 1, 1, 1, 1)).view(torch.uint8)
        span = rays.fars - rays.nears
        scale = g / (2 * self.bound)  # cells per unit length
        start = (rays.origins + rays.nears[:, None] * rays.directions + self.bound) * scale + 1  # [H, 3], padded cells
        step = (span * scale / steps)[:, None] * rays.directions  # [H, 3]
        edges = torch.arange(steps + 1, device=span.device, dtype=span.dtype)  # [steps + 1], in steps
        centres = edges[:-1] + 0.5
        x, y, z = (torch.outer(step[:, axis], centres).add_(start[:, axis, None]).floor_().clamp_(0, side - 1) for axis in range(3))
        flat = (x * side + y).mul_(side).add_(z)  # [H, steps]: each point's padded cell, exact in float32 (side^3 < 2^24)
        inside = padded.take(flat.long())  # [H, steps], 0 or 1
        first = inside.argmax(dim=-1)
        last = steps - 1 - inside.flip(-1).argmax(dim=-1)
        keep = inside.any(dim=-1).nonzero().squeeze(-1)
        edges = edges / steps
        nears = rays.nears + span * edges[first]
        fars = rays.nears + span * edges[last + 1]
        return BoxRays(rays.origins[keep], rays.directions[keep], nears[keep], fars[keep], rays.slot[keep], rays.index[keep])
