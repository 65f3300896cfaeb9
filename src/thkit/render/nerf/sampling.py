"""Where along each ray the field is evaluated: nerfstudio samplers on the rays inside the box.

`CoarseToFine` is NeRF's hierarchical sampling with one field: `coarse` uniform samples over the
ray's interval give densities without gradient, and `fine` PDF samples drawn from the resulting
weights are the ones rendered. It needs no proposal network and no extra loss, so it is right
whatever losses a spec chooses, and the coarse pass costs no backward pass.

The coarse pass runs front to back in blocks and stops evaluating a ray once its transmittance has
fallen below 1e-3: whatever lies behind an opaque face cannot change the weights, and for a trained
head most rays stop in the first blocks. (An untrained field is hazy everywhere, so this saves
nothing there.) Rendering with an occupancy grid first shrinks each interval to its occupied
stretch (`thkit.render.nerf.occupancy`), so the same samples land closer together, and can read
the coarse densities from a grid sampled once from the trained field (`from_lookup`,
`thkit.render.nerf.density_cache`) instead of evaluating the field for them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from jaxtyping import Float, Int
from nerfstudio.cameras.rays import RayBundle, RaySamples
from nerfstudio.model_components.ray_samplers import PDFSampler, UniformSampler
from torch import Tensor, nn

from thkit.render.nerf.bounds import BoxRays

# PDF floor added to every coarse weight: keeps a few fine samples exploring the whole interval, so
# that density appearing where the coarse pass saw nothing is still found (nerfstudio's default).
HISTOGRAM_PADDING = 0.01


def ray_bundle(rays: BoxRays) -> RayBundle:
    """A nerfstudio RayBundle of box rays; `camera_indices` carries each ray's frame slot."""
    count = len(rays)
    return RayBundle(
        origins=rays.origins,
        directions=rays.directions,
        pixel_area=torch.ones(count, 1, dtype=rays.origins.dtype, device=rays.origins.device),
        camera_indices=rays.slot[:, None],
        nears=rays.nears[:, None],
        fars=rays.fars[:, None],
    )


# (points [A, n, 3] on rays `ray_ids` [A] of the bundle) -> densities [A, n, 1]
DensityFn = Callable[[Float[Tensor, "A n 3"], Int[Tensor, "A"]], Float[Tensor, "A n 1"]]


COARSE_BLOCK = 8  # coarse samples evaluated per step of the front-to-back pass
OPAQUE_DEPTH = 6.9  # optical depth at which a ray counts as finished: transmittance exp(-6.9) = 1e-3


class CoarseToFine(nn.Module):
    """Uniform coarse samples -> densities (no gradient, front to back) -> `fine` PDF samples, the ones rendered."""

    def __init__(self, coarse: int, fine: int) -> None:
        super().__init__()
        self.uniform = UniformSampler(num_samples=coarse, train_stratified=True)
        self.pdf = PDFSampler(num_samples=fine, train_stratified=True, include_original=False, histogram_padding=HISTOGRAM_PADDING)

    def forward(self, bundle: RayBundle, density_fn: DensityFn) -> RaySamples:
        coarse = self.uniform(bundle)
        with torch.no_grad():
            weights = coarse.get_weights(front_to_back(bundle, coarse, density_fn))
        return self.pdf(bundle, coarse, weights)

    @torch.no_grad()
    def from_lookup(self, bundle: RayBundle, lookup: Callable[[Float[Tensor, "H N 3"]], Float[Tensor, "H N 1"]]) -> RaySamples:
        """The fine samples, placed by densities looked up (a `DensityCache`) instead of evaluated by the field.

        A lookup is a fraction of a field evaluation, so every coarse sample is looked up: there
        is nothing to save by stopping at opaque rays.
        """
        coarse = self.uniform(bundle)
        return self.pdf(bundle, coarse, coarse.get_weights(lookup(coarse.frustums.get_positions())))


def front_to_back(bundle: RayBundle, samples: RaySamples, density_fn: DensityFn, block: int = COARSE_BLOCK) -> Float[Tensor, "H N 1"]:
    """Densities of every sample, except those behind a point where the ray became opaque (left at 0)."""
    frustums, deltas = samples.frustums, samples.deltas
    assert deltas is not None
    middles = ((frustums.starts + frustums.ends) / 2)[..., 0]  # [H, N]
    rays, count = middles.shape
    density = middles.new_zeros(rays, count, 1)
    depth = middles.new_zeros(rays)
    alive = torch.arange(rays, device=middles.device)
    for start in range(0, count, block):
        stop = min(start + block, count)
        points = bundle.origins[alive, None, :] + middles[alive, start:stop, None] * bundle.directions[alive, None, :]
        part = density_fn(points, alive)
        density[alive, start:stop] = part
        depth[alive] += (part[..., 0] * deltas[alive, start:stop, 0]).sum(dim=-1)
        alive = alive[depth[alive] < OPAQUE_DEPTH]
        if alive.numel() == 0:
            break
    return density
