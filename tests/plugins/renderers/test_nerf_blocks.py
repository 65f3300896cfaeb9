"""The shared NeRF building blocks in `thkit.render.nerf`."""

from __future__ import annotations

import math

import torch

from thkit.core.pixels import PixelBatch
from thkit.render.nerf.bounds import BoxRays, intersect_box, rays_in_box
from thkit.render.nerf.compose import alpha_entropy, over, over_background
from thkit.render.nerf.density_cache import DensityCache
from thkit.render.nerf.encodings import MultiResPlanes2d, MultiResTriplanes
from thkit.render.nerf.occupancy import MAX_STEP_CELLS, OccupancyGrid
from thkit.render.nerf.sampling import CoarseToFine, front_to_back, ray_bundle

LOWER, UPPER = torch.full((3,), -1.0), torch.full((3,), 1.0)


def test_box_intersection_distances():
    origins = torch.tensor([[0.0, 0.0, 5.0], [0.0, 0.0, 5.0], [0.5, 0.5, 0.0], [3.0, 0.0, 5.0], [0.0, 0.0, 5.0], [0.0, 0.0, 5.0]])
    directions = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.2, 0.0, -1.0], [0.6, 0.0, -0.8]])
    enter, leave = intersect_box(origins, directions, LOWER, UPPER)
    assert torch.allclose(enter[0], torch.tensor(4.0)) and torch.allclose(leave[0], torch.tensor(6.0))  # straight through
    assert leave[1] < 0  # pointing away: the box is behind the camera
    assert torch.allclose(enter[2], torch.tensor(-1.5)) and torch.allclose(leave[2], torch.tensor(0.5))  # starts inside
    assert enter[3] >= leave[3]  # parallel to z, beside the box: zero direction components give no NaN
    assert torch.allclose(enter[4], torch.tensor(4.0)) and torch.allclose(leave[4], torch.tensor(5.0))  # leaves through the side x = 1
    assert enter[5] >= leave[5]  # oblique miss
    assert not torch.isnan(torch.stack([enter, leave])).any()


def test_rays_in_box_clip_to_near_and_far():
    pose = torch.eye(4)[None]  # camera at the centre of the box, looking along -z
    batch = PixelBatch(torch.tensor([[16.0, 16.0]]), torch.zeros(1, dtype=torch.long), torch.tensor([0]), pose, torch.tensor([32.0, 16.0, 16.0]), 32, 32)
    rays = rays_in_box(batch, bound=1.0, near=0.05, far=100.0)
    assert len(rays) == 1 and math.isclose(float(rays.nears[0]), 0.05, rel_tol=1e-6) and math.isclose(float(rays.fars[0]), 1.0, rel_tol=1e-5)
    assert len(rays_in_box(batch, bound=1.0, near=0.05, far=0.01)) == 0  # far before near: nothing to sample


def test_premultiplied_over():
    g = torch.Generator().manual_seed(0)
    layers = []
    for _ in range(3):
        alpha = torch.rand(50, 1, generator=g)
        layers.append(torch.cat([torch.rand(50, 3, generator=g) * alpha, alpha], dim=-1))
    a, b, c = layers
    assert torch.allclose(over(over(a, b), c), over(a, over(b, c)), atol=1e-6)  # associative
    opaque = torch.cat([torch.rand(50, 3, generator=g), torch.ones(50, 1)], dim=-1)
    assert torch.equal(over(opaque, a), opaque)
    assert torch.equal(over(torch.zeros(50, 4), a), a)
    background = torch.rand(50, 3, generator=g)
    assert torch.allclose(over_background(over(a, b), background), over_background(a, over_background(b, background)), atol=1e-6)


def test_alpha_entropy():
    values = alpha_entropy(torch.tensor([0.0, 0.5, 1.0]))
    assert values[0] < 1e-3 and values[2] < 1e-3 and math.isclose(float(values[1]), 1.0, rel_tol=1e-5)


def test_triplanes_concatenate_kplanes_levels():
    planes = MultiResTriplanes([4, 8], channels=3)
    points = torch.rand(10, 3) * 2 - 1
    features = planes(points)
    assert features.shape == (10, 6) and planes.out_dim == 6
    assert torch.equal(features[:, :3], planes.levels[0](points))  # one batched grid_sample per level: KPlanes' values exactly
    assert torch.equal(features[:, 3:], planes.levels[1](points))
    assert features.is_contiguous()


def test_planes_2d_are_bilinear_on_the_grid():
    grids = MultiResPlanes2d([2], channels=1)
    with torch.no_grad():
        grids.grids[0].copy_(torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]]))  # value = x01 + 2 * y01 at the corners
    xy = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0], [0.5, -1.0]])
    assert torch.allclose(grids(xy)[:, 0], torch.tensor([0.0, 3.0, 1.5, 0.75]))


def test_front_to_back_stops_at_an_opaque_wall():
    origins = torch.zeros(4, 3)
    directions = torch.tensor([[1.0, 0.0, 0.0]]).expand(4, 3)
    box = BoxRays(origins, directions, torch.zeros(4), torch.full((4,), 4.0), torch.zeros(4, dtype=torch.long), torch.arange(4))
    bundle = ray_bundle(box)
    sampler = CoarseToFine(coarse=32, fine=8).eval()
    evaluated = []

    def wall(points: torch.Tensor, ray_ids: torch.Tensor) -> torch.Tensor:
        evaluated.append(points.shape[0] * points.shape[1])
        return torch.where(points[..., :1] > 1.0, 1e3, 0.0)  # empty up to x = 1, opaque after

    coarse = sampler.uniform(bundle)
    density = front_to_back(bundle, coarse, wall, block=8)
    assert sum(evaluated) == 4 * 16  # the ray is opaque within the second block of 8: the last two are skipped
    assert (density[:, 16:] == 0).all()
    fine = sampler(bundle, wall)
    middles = (fine.frustums.starts + fine.frustums.ends)[..., 0] / 2
    assert ((middles > 0.8) & (middles < 1.4)).float().mean() > 0.8  # fine samples gather at the wall


def test_occupancy_grid_update_threshold_and_clip():
    grid = OccupancyGrid(resolution=8, bound=1.0, every=2, decay=0.5)
    assert not grid.ready
    calls = []

    def density(points: torch.Tensor) -> torch.Tensor:
        calls.append(len(points))
        return torch.where((points.abs() < 0.25).all(dim=-1), 100.0, 0.0)  # dense in the 2 x 2 x 2 centre cells

    grid.step(density)
    assert not grid.ready and not calls  # the first call is not a refresh: a barely trained field never sets the grid
    grid.step(density)
    assert grid.ready and calls == [8**3]
    occupied = grid.mask()
    assert occupied[4, 4, 4] and not occupied[0, 0, 0]
    assert int(occupied.sum()) == 4**3  # the centre cells, dilated by one
    rays = BoxRays(
        torch.tensor([[0.0, 0.0, 5.0], [0.9, 0.9, 5.0]]),
        torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0]]),
        torch.full((2,), 4.0),
        torch.full((2,), 6.0),
        torch.zeros(2, dtype=torch.long),
        torch.tensor([7, 9]),
    )
    clipped = grid.clip(rays)
    assert clipped.index.tolist() == [7]  # the ray through the corner crosses nothing
    # The occupied cells span z in [-0.5, 0.5]: 4.5 to 5.5 from the camera at z = 5.
    assert math.isclose(float(clipped.nears[0]), 4.5, rel_tol=1e-6) and math.isclose(float(clipped.fars[0]), 5.5, rel_tol=1e-6)


def test_occupancy_clip_keeps_every_occupied_stretch():
    """Against a dense lookup (1/20 of a cell apart): a ray through a dense cell is kept and its interval
    covers the cell; kept intervals lie in the dilated mask's stretch, give or take one lookup step."""
    grid = OccupancyGrid(resolution=8, bound=1.0)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        grid.density[1, 1, 1] = grid.density[6, 5, 2] = 10.0  # two dense cells, dilated into two 3 x 3 x 3 blocks
        grid.updates.fill_(1)
    count = 4000
    origins = torch.randn(count, 3, generator=generator) * 2
    directions = torch.nn.functional.normalize(torch.randn(count, 3, generator=generator) - origins / 3, dim=-1)
    enter, leave = intersect_box(origins, directions, LOWER, UPPER)
    hits = (leave > enter.clamp(min=0)).nonzero().squeeze(-1)
    rays = BoxRays(origins[hits], directions[hits], enter[hits].clamp(min=0), leave[hits], torch.zeros(len(hits), dtype=torch.long), hits)
    steps = 20 * 2 * grid.resolution
    span = rays.fars - rays.nears
    at = rays.nears[:, None] + span[:, None] * (torch.arange(steps) + 0.5) / steps  # [H, steps]
    points = rays.origins[:, None, :] + at[..., None] * rays.directions[:, None, :]
    in_mask = grid.occupied(points)
    cells = ((points + 1) / 2 * 8).floor().long()
    dense = ((cells == torch.tensor([1, 1, 1])).all(dim=-1) | (cells == torch.tensor([6, 5, 2])).all(dim=-1)) & in_mask
    clipped = grid.clip(rays)
    kept = {int(i): n for n, i in enumerate(clipped.index)}
    assert 0 < len(kept) < len(hits)
    assert set(rays.index[dense.any(dim=-1)].tolist()) <= set(kept)  # every ray through a dense cell
    assert set(kept) <= set(rays.index[in_mask.any(dim=-1)].tolist())  # only rays through the mask
    step = MAX_STEP_CELLS * 2 / 8  # world units
    for row in range(len(rays)):
        n = kept.get(int(rays.index[row]))
        if n is None:
            continue
        near, far = float(clipped.nears[n]), float(clipped.fars[n])
        if dense[row].any():
            assert near <= float(at[row][dense[row]].min()) and far >= float(at[row][dense[row]].max())
        stretch = at[row][in_mask[row]]
        assert near >= float(stretch.min()) - step and far <= float(stretch.max()) + step
    chunked = grid.clip(rays, chunk=97)  # chunks of the work arrays, the same rays
    assert all(torch.equal(a, b) for a, b in zip(vars(chunked).values(), vars(clipped).values(), strict=True))
    assert len(grid.clip(rays.take(0, 0), chunk=97)) == 0
    with torch.no_grad():
        grid.density.zero_()
    assert len(grid.clip(rays)) == 0  # nothing occupied: every ray is dropped


def test_density_cache_samples_occupied_cells_once_per_key():
    cache = DensityCache(resolution=4, bound=1.0)
    calls = []

    def density(points: torch.Tensor) -> torch.Tensor:
        calls.append(len(points))
        return 10.0 + points[:, 0]  # x at the cell centre, plus 10

    def occupied(points: torch.Tensor) -> torch.Tensor:
        return points[:, 2] > 0  # the upper half in z

    cache.refresh("weights v1", density, occupied)
    assert calls == [32] and cache.density.shape == (4, 4, 4)
    assert (cache.density[:, :, :2] == 0).all()  # unoccupied cells hold nothing
    assert torch.allclose(cache.density[:, 1, 3], torch.tensor([9.25, 9.75, 10.25, 10.75]))
    cache.refresh("weights v1", density, occupied)
    assert calls == [32]  # the same key: not sampled again
    cache.refresh("weights v2", density, occupied)
    assert calls == [32, 32]
    points = torch.tensor([[-0.9, -0.9, 0.9], [0.3, 0.1, 0.6], [0.3, 0.1, -0.6], [1.3, 0.0, 0.9]])
    looked_up = cache(points)  # the cell each point falls in; past the +x face, the cell at the face
    assert looked_up.shape == (4, 1)
    assert torch.allclose(looked_up[:, 0], torch.tensor([9.25, 10.25, 0.0, 10.75]))
    assert "density" not in cache.state_dict()  # derived data: never saved with the weights


def test_fine_samples_from_a_lookup_gather_at_the_wall():
    origins = torch.zeros(4, 3)
    directions = torch.tensor([[1.0, 0.0, 0.0]]).expand(4, 3)
    box = BoxRays(origins, directions, torch.zeros(4), torch.full((4,), 4.0), torch.zeros(4, dtype=torch.long), torch.arange(4))
    sampler = CoarseToFine(coarse=32, fine=8).eval()
    fine = sampler.from_lookup(ray_bundle(box), lambda points: torch.where(points[..., :1] > 1.0, 1e3, 0.0))
    middles = (fine.frustums.starts + fine.frustums.ends)[..., 0] / 2
    assert middles.shape == (4, 8)
    assert ((middles > 0.8) & (middles < 1.4)).float().mean() > 0.8
