"""`triplane-nerf`: the ER-NeRF-style head renderer."""

from __future__ import annotations

import copy
import math
from fractions import Fraction

import pytest
import torch
from pydantic import ValidationError

from thkit.core import Frames, GraphContext, Pose, Seq
from thkit.core.graph import load_graph
from thkit.core.pixels import PixelBatch
from thkit.core.registry import Registry
from thkit.plugins.encoders.mel import MelEncoder
from thkit.plugins.fusion.concat import ConcatFusion
from thkit.plugins.renderers.torso_2d import Torso2d
from thkit.plugins.renderers.triplane_nerf import TriplaneNerf
from thkit.render.nerf.bounds import rays_in_box
from thkit.render.nerf.compose import over_background
from thkit.testing import check_component
from tests.plugins.renderers.frames import Frame, counting_field, occupy_a_central_block, psnr

FPS = Fraction(25)
AUDIO = Seq(12, FPS)
SMALL = {"resolutions": [16, 32], "channels": 4, "hidden": 16, "gate_hidden": 8, "audio_dim": 8, "coarse_samples": 8, "fine_samples": 4}


def build(params: dict | None = None, *, blink: bool = True, n_frames: int = 25, size: int = 64) -> torch.nn.Module:
    ports = {"audio": AUDIO, "pose": Pose(FPS)} | ({"blink": Seq(1, FPS)} if blink else {})
    torch.manual_seed(0)
    return TriplaneNerf(TriplaneNerf.Params(**(params or {})), ports, GraphContext(video_fps=FPS, image_size=size, n_frames=n_frames)).build()


def conditions(frames: int = 1, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"audio": torch.randn(frames, AUDIO.dim, generator=g), "pose": torch.eye(4).expand(frames, 4, 4), "blink": torch.rand(frames, 1, generator=g)}


def facing_cameras(frames: int, distance: float = 12.0) -> torch.Tensor:
    """Cameras on +z looking at the head (the synthetic subject's set-up)."""
    pose = torch.eye(4).repeat(frames, 1, 1)
    pose[:, 2, 3] = distance
    return pose


def random_batch(frames: int = 2, rays: int = 300, size: int = 64, seed: int = 0) -> PixelBatch:
    g = torch.Generator().manual_seed(seed)
    pixels = torch.rand(rays, 2, generator=g) * size
    slot = torch.randint(0, frames, (rays,), generator=g)
    intrinsics = torch.tensor([3.0 * size, size / 2, size / 2])
    return PixelBatch(pixels, slot, torch.arange(frames), facing_cameras(frames), intrinsics, size, size)


# -- contract, ports, params, graph ---------------------------------------------------------------


def test_contract():
    check_component(TriplaneNerf)


def test_contract_without_blink_and_small():
    check_component(TriplaneNerf, params=SMALL, inputs={"audio": Seq(3, FPS), "pose": Pose(FPS)}, check_import=False)


def test_ports_and_params():
    component = TriplaneNerf(TriplaneNerf.Params(), {"audio": AUDIO, "pose": Pose(FPS)}, GraphContext(video_fps=FPS, image_size=256))
    assert component.outputs() == {"rgba": Frames(256, 256, FPS)}
    assert TriplaneNerf.accepts("blink").required is False
    with pytest.raises(ValidationError):
        TriplaneNerf.Params(planes=3)  # unknown keys are errors
    with pytest.raises(ValidationError, match="resolution must be >= 2"):
        TriplaneNerf.Params(resolutions=[64, 1])


def test_head_and_torso_wire_in_a_spec():
    registry = Registry()
    for cls, name in ((MelEncoder, "mel"), (ConcatFusion, "concat"), (TriplaneNerf, "triplane-nerf"), (Torso2d, "torso-2d")):
        registry.register(cls, name, "thkit")
    spec = """\
thkit: 1
name: head
data: {synthetic: {seconds: 2, size: 128}}
nodes:
  mel: {kind: encoder, type: mel, inputs: {audio: $audio}}
  fuse: {kind: fusion, type: concat, inputs: {mel: mel.features}}
  head: {kind: renderer, type: triplane-nerf, params: {channels: 4}, inputs: {audio: fuse.code, pose: $pose, blink: $blink}}
  torso: {kind: renderer, type: torso-2d, inputs: {head: head.rgba, pose: $pose}}
outputs: {video: torso.rgba}
"""
    graph = load_graph("head.yaml", text=spec, components=registry)
    assert graph.nodes["head"].outputs == {"rgba": Frames(128, 128, FPS)}
    assert graph.nodes["torso"].outputs == {"rgba": Frames(128, 128, FPS)}
    assert graph.context.n_frames == 50
    modules = graph.build_modules(["head"])
    assert modules["head"].codes.table.num_embeddings == 50
    assert modules["head"].audio_net.in_dim == 80


# -- outputs ---------------------------------------------------------------------------------------


def test_outputs_have_the_contract_shapes_and_ranges():
    module = build().eval()
    batch = random_batch()
    with torch.no_grad():
        out = module(batch, conditions(2))
    assert set(out) == {"rgba", "depth", "reg_ambient", "reg_entropy", "reg_eye"}
    assert out["rgba"].shape == (300, 4)
    for name in ("depth", "reg_ambient", "reg_entropy", "reg_eye"):
        assert out[name].shape == (300,), name
        assert torch.isfinite(out[name]).all(), name
    rgba = out["rgba"]
    assert rgba.min() >= 0 and rgba.max() <= 1
    assert (rgba[:, :3] <= rgba[:, 3:] + 1e-6).all()  # premultiplied: colour never exceeds alpha
    assert rgba[:, 3].max() > 0.01  # the untrained field is a faint haze, not nothing
    assert out["reg_ambient"].min() >= 0 and out["reg_ambient"].max() <= 1  # a mean gate in [0, 1] times weights summing to <= 1
    hit = out["rgba"][:, 3] > 0
    assert ((out["depth"][hit] > 10.5) & (out["depth"][hit] < 13.5)).all()  # inside the box seen from 12 dm


def test_without_blink_there_is_no_eye_term():
    module = build(SMALL, blink=False).eval()
    with torch.no_grad():
        out = module(random_batch(), {"audio": conditions(2)["audio"], "pose": facing_cameras(2)})
    assert set(out) == {"rgba", "depth", "reg_ambient", "reg_entropy"}


def test_rays_that_miss_the_box_are_transparent():
    module = build(SMALL).eval()
    size = 64
    intrinsics = torch.tensor([30.0, size / 2, size / 2])  # wide view: the frame's corners look past the box
    batch = PixelBatch.full_frames(facing_cameras(1), intrinsics, size, size, torch.tensor([0]))
    origins, directions = batch.rays()
    # Rays leave the camera on the box's axis and spread outwards: one that passes the box's front
    # face (z = 1.4) outside the square [-1.4, 1.4]^2 stays outside it at every depth behind.
    t = (1.4 - origins[:, 2]) / directions[:, 2]
    misses = (origins + t[:, None] * directions)[:, :2].abs().amax(dim=-1) > 1.4
    assert 100 < int(misses.sum()) < size * size
    with torch.no_grad():
        out = module(batch, conditions())
    assert (out["rgba"][misses] == 0).all()
    assert (out["reg_ambient"][misses] == 0).all()
    assert (out["depth"][misses] == module.far).all()
    assert (out["rgba"][~misses, 3] > 0).float().mean() > 0.9

    away = facing_cameras(1)
    away[0, :3, :3] = torch.tensor([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])  # looking along +x, past the head
    with torch.no_grad():
        out = module(PixelBatch.full_frames(away, intrinsics, size, size), conditions())
    assert (out["rgba"] == 0).all()


def test_audio_reaches_the_image_only_through_the_gate():
    module = build().eval()
    batch = random_batch(frames=1)
    quiet, loud = conditions(1, seed=1), conditions(1, seed=2)
    loud["blink"] = quiet["blink"]
    with torch.no_grad():
        assert not torch.allclose(module(batch, quiet)["rgba"], module(batch, loud)["rgba"])
        last = module.audio_gate.layers[-1]
        last.weight.zero_()
        last.bias.fill_(-1e4)  # sigmoid -> exactly 0: the gate is shut everywhere
        shut_quiet, shut_loud = module(batch, quiet), module(batch, loud)
    assert torch.equal(shut_quiet["rgba"], shut_loud["rgba"])
    assert (shut_quiet["reg_ambient"] == 0).all()


def test_blink_reaches_the_image_only_through_the_eye_gate():
    module = build().eval()
    batch = random_batch(frames=1)
    open_eyes, closed = conditions(1), conditions(1)
    open_eyes["blink"], closed["blink"] = torch.zeros(1, 1), torch.ones(1, 1)
    with torch.no_grad():
        assert not torch.allclose(module(batch, open_eyes)["rgba"], module(batch, closed)["rgba"])
        module.eye_gate.layers[-1].weight.zero_()
        module.eye_gate.layers[-1].bias.fill_(-1e4)
        assert torch.equal(module(batch, open_eyes)["rgba"], module(batch, closed)["rgba"])


def test_unseen_frames_use_the_mean_code():
    module = build(SMALL).eval()
    with torch.no_grad():
        module.codes.table.weight.normal_()
        codes = module.codes(torch.tensor([3, -1, 999]))
    mean = module.codes.table.weight.mean(dim=0)
    assert torch.equal(codes[0], module.codes.table.weight[3])
    assert torch.allclose(codes[1], mean) and torch.allclose(codes[2], mean)
    assert build(SMALL, n_frames=0).codes.table.num_embeddings == 1  # frames unknown: one shared code


def test_deterministic_in_eval_mode():
    module = build().eval()
    batch = random_batch()
    with torch.no_grad():
        first, second = module(batch, conditions(2)), module(batch, conditions(2))
    for name in first:
        assert torch.equal(first[name], second[name]), name


def test_gradient_reaches_planes_heads_gates_codes_and_audio_projection():
    module = build().train()
    batch = random_batch()
    out = module(batch, conditions(2))
    (out["rgba"].sum() + out["reg_ambient"].sum() + out["reg_eye"].sum()).backward()
    named = dict(module.named_parameters())
    for name in (
        "planes.levels.0.plane_coefs.0",
        "planes.levels.1.plane_coefs.2",
        "density_net.layers.0.weight",
        "colour_net.layers.1.weight",
        "audio_gate.layers.0.weight",
        "eye_gate.layers.1.weight",
        "audio_net.layers.0.weight",
        "codes.table.weight",
    ):
        grad = named[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_whole_frame_renders_the_same_in_chunks():
    module = build(dict(SMALL, inference_precision="float32")).eval()
    batch = PixelBatch.full_frames(facing_cameras(1), torch.tensor([192.0, 32.0, 32.0]), 64, 64, torch.tensor([0]))
    with torch.no_grad():
        whole = module(batch, conditions())
        module.chunk = 333
        chunked = module(batch, conditions())
    assert torch.allclose(whole["rgba"], chunked["rgba"], atol=1e-6)
    assert whole["rgba"].shape == (64 * 64, 4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_cuda():
    module = build(dict(SMALL, density_cache=32)).cuda().eval()
    with torch.no_grad():
        out = module(random_batch(), conditions(2))
        occupy_a_central_block(module)  # the occupancy clip and the density cache on the device too
        fast = module(random_batch(), conditions(2))
    assert out["rgba"].device.type == "cuda" and fast["rgba"].device.type == "cuda"
    assert module.density_cache.density.is_cuda and (fast["rgba"][:, 3] > 0).any()


# -- learning --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def one_frame(subject) -> tuple[torch.nn.Module, Frame, dict[str, torch.Tensor], torch.Tensor]:
    """The head of one synthetic frame overfitted from random rays (150 steps): (module in eval mode, frame, conditions, target)."""
    frame = Frame(subject, 0)
    target = torch.where((frame.labels == 2)[:, None], frame.rgb, frame.background)  # the head over the plate; the torso is torso-2d's
    module = build(n_frames=len(subject)).train()
    cond = {"audio": torch.randn(1, AUDIO.dim), "pose": frame.pose, "blink": torch.zeros(1, 1)}
    optimiser = torch.optim.Adam(module.parameters(), lr=1e-2, betas=(0.9, 0.99), eps=1e-15)
    generator = torch.Generator().manual_seed(0)
    for _ in range(150):
        rays = torch.randint(0, frame.size**2, (1024,), generator=generator)
        out = module(frame.pick(rays), cond)
        loss = (over_background(out["rgba"], frame.background[rays]) - target[rays]).square().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return module.eval(), frame, cond, target


def test_learns_one_frame(one_frame):
    """PSNR well above 22 dB on the head within 150 steps."""
    module, frame, cond, target = one_frame
    head = frame.labels == 2
    assert module.occupancy.ready
    with torch.no_grad():
        rendered = over_background(module(frame.full(), cond)["rgba"], frame.background)
    assert psnr(rendered[head], target[head]) > 22
    assert psnr(rendered, target) > 27


def test_occupancy_grid_only_skips_what_renders_as_nothing(one_frame):
    trained, frame, cond, _ = one_frame
    module = copy.deepcopy(trained)
    module.density_cache = None  # the field's own coarse pass, with and without the grid
    with torch.no_grad():
        skipped = over_background(module(frame.full(), cond)["rgba"], frame.background)
        module.occupancy.updates.zero_()
        unskipped = over_background(module(frame.full(), cond)["rgba"], frame.background)
    assert psnr(skipped, unskipped) > 35


def test_density_cache_renders_as_the_coarse_pass(one_frame):
    """The fast path (samples placed by the density cache) against the reference (the field's coarse pass), same weights."""
    fast, frame, cond, target = one_frame
    reference = copy.deepcopy(fast)
    reference.density_cache = None
    batch = frame.full()
    with torch.no_grad():
        fast(batch, cond)  # samples the cache
        fast_points, reference_points = counting_field(fast), counting_field(reference)
        quick, slow = fast(batch, cond), reference(batch, cond)
    del fast.field, reference.field
    assert sum(fast_points) < 0.5 * sum(reference_points)  # the 16 fine points of 32 + 16 a ray (about 0.35 with early stopping)
    quick_rgb, slow_rgb = over_background(quick["rgba"], frame.background), over_background(slow["rgba"], frame.background)
    assert psnr(quick_rgb, slow_rgb) > 35  # about 40 dB
    assert psnr(quick_rgb, target) > psnr(slow_rgb, target) - 0.5  # about 0.3 dB below on this toy, 0.03 dB on the demo's run

    in_box = torch.zeros(batch.n_rays, dtype=torch.bool)
    in_box[rays_in_box(batch, fast.bound, fast.near, fast.far).index] = True
    assert 0 < int((~in_box).sum()) < batch.n_rays
    for out in (quick, slow):  # a pixel whose ray misses the box is exactly the background
        assert (out["rgba"][~in_box] == 0).all() and (out["depth"][~in_box] == fast.far).all()
        assert (out["reg_ambient"][~in_box] == 0).all() and (out["reg_eye"][~in_box] == 0).all()
    assert torch.equal(quick_rgb[~in_box], frame.background[~in_box])
    assert torch.equal(quick["rgba"][slow["rgba"][:, 3] == 0], slow["rgba"][slow["rgba"][:, 3] == 0])  # the grid skips the same rays


def test_density_cache_follows_the_weights():
    module = build(dict(SMALL, density_cache=32)).eval()
    batch = PixelBatch.full_frames(facing_cameras(1), torch.tensor([192.0, 32.0, 32.0]), 64, 64)
    occupy_a_central_block(module)
    with torch.no_grad():
        first = module(batch, conditions())["rgba"]
        sampled = module.density_cache.density
        assert sampled.shape == (32, 32, 32) and 0 < int((sampled > 0).sum()) < 32**3  # the occupied cells only
        module(batch, conditions())
        assert module.density_cache.density is sampled  # the same weights: not sampled again
        module.density_net.layers[-1].bias[0] += 2.0  # denser everywhere
        second = module(batch, conditions())["rgba"]
        assert module.density_cache.density is not sampled and (module.density_cache.density >= sampled).all()
        assert second[:, 3].sum() > first[:, 3].sum()
    assert not any("density_cache" in key for key in module.state_dict())  # derived data, not weights

    reference = copy.deepcopy(module)
    reference.density_cache = None
    with torch.enable_grad():  # with gradient, even in eval mode, the field's own coarse pass places the samples
        assert torch.equal(module(batch, conditions())["rgba"], reference(batch, conditions())["rgba"])
    assert build(dict(SMALL, density_cache=0)).density_cache is None


def test_occupancy_grid_skips_rays_that_cross_nothing():
    module = build(SMALL).eval()
    grid = module.occupancy
    with torch.no_grad():
        grid.density.zero_()
        g = grid.resolution
        grid.density[g // 2, g // 2, g // 2] = 1e3  # one dense cell at the centre
        grid.updates.fill_(1)
        out = module(PixelBatch.full_frames(facing_cameras(1), torch.tensor([192.0, 32.0, 32.0]), 64, 64), conditions())
    drawn = (out["rgba"][:, 3] > 0).reshape(64, 64)
    rows, cols = drawn.nonzero(as_tuple=True)
    assert 0 < len(rows) < 100  # only the rays near the centre cell (dilated by one cell) are rendered
    assert math.isclose(float(rows.float().mean()), 31.5, abs_tol=1.5) and math.isclose(float(cols.float().mean()), 31.5, abs_tol=1.5)
