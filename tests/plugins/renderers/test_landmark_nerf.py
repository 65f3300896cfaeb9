"""`landmark-nerf`: the head NeRF conditioned on landmarks by Gaussian relative position coding."""

from __future__ import annotations

import copy
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from thkit.core import Frames, GraphContext, Landmarks, Pose, Seq
from thkit.core.pixels import PixelBatch
from thkit.plugins.renderers.landmark_nerf import LandmarkNerf
from thkit.render.nerf.compose import over_background
from thkit.testing import check_component
from tests.plugins.renderers.frames import counting_field, occupy_a_central_block, psnr

FPS = Fraction(25)
LANDMARKS = Landmarks(68, 3, FPS)
AUDIO = Seq(12, FPS)
SMALL = {"resolutions": [16, 32], "channels": 4, "hidden": 16, "landmark_dim": 16, "gate_hidden": 8, "audio_dim": 8, "coarse_samples": 8, "fine_samples": 4}
LOWER_LIP = 57  # iBUG 68: the lower lip's outer midpoint


def build(params: dict | None = None, *, audio: bool = False, blink: bool = False, n_frames: int = 25, size: int = 32) -> torch.nn.Module:
    ports = {"landmarks": LANDMARKS, "pose": Pose(FPS)} | ({"audio": AUDIO} if audio else {}) | ({"blink": Seq(1, FPS)} if blink else {})
    torch.manual_seed(0)
    return LandmarkNerf(LandmarkNerf.Params(**(SMALL | (params or {}))), ports, GraphContext(video_fps=FPS, image_size=size, n_frames=n_frames)).build()


class SmallFrame:
    """Frame `index` of a 64 px dataset at 32 px (2 x 2 pixel means, half the focal length), as flat tensors."""

    size = 32

    def __init__(self, dataset, index: int = 0) -> None:
        meta = dataset.meta
        self.pose = torch.tensor(np.asarray(dataset.array("poses")[index : index + 1]))
        self.landmarks = torch.tensor(np.asarray(dataset.array("landmarks3d")[index : index + 1]))
        self.landmarks2d = torch.tensor(np.asarray(dataset.array("landmarks2d")[index])) / 2
        self.intrinsics = torch.tensor([meta.intrinsics.focal, meta.intrinsics.cx, meta.intrinsics.cy]) / 2
        self.rgb = shrink(dataset.frame(index) / 255.0)
        self.background = shrink(dataset.background / 255.0)
        labels = np.asarray(dataset.mask(index))
        self.head = shrink((labels == 2)[..., None])[:, 0] > 0.5
        self.torso = shrink((labels == 1)[..., None])[:, 0] > 0.5

    def full(self) -> PixelBatch:
        return PixelBatch.full_frames(self.pose, self.intrinsics, self.size, self.size, torch.tensor([0]))

    def pick(self, rays: torch.Tensor) -> PixelBatch:
        full = self.full()
        return PixelBatch(full.pixels[rays], full.slot[rays], full.frame_ids, full.camera_to_world, full.intrinsics, self.size, self.size)

    def distance_to(self, point: torch.Tensor) -> torch.Tensor:
        """Each pixel centre's distance (pixels) to an image point."""
        rows, cols = torch.meshgrid(torch.arange(self.size) + 0.5, torch.arange(self.size) + 0.5, indexing="ij")
        return ((cols - point[0]) ** 2 + (rows - point[1]) ** 2).sqrt().flatten()


def shrink(image: np.ndarray) -> torch.Tensor:
    """[64, 64, C] -> [32 * 32, C] by 2 x 2 means."""
    tensor = torch.as_tensor(np.asarray(image), dtype=torch.float32).permute(2, 0, 1)[None]
    return F.avg_pool2d(tensor, 2)[0].permute(1, 2, 0).reshape(-1, tensor.shape[1])


def facing_cameras(frames: int, distance: float = 12.0) -> torch.Tensor:
    pose = torch.eye(4).repeat(frames, 1, 1)
    pose[:, 2, 3] = distance
    return pose


def random_batch(frames: int = 2, rays: int = 300, size: int = 32, seed: int = 0) -> PixelBatch:
    g = torch.Generator().manual_seed(seed)
    pixels = torch.rand(rays, 2, generator=g) * size
    slot = torch.randint(0, frames, (rays,), generator=g)
    return PixelBatch(pixels, slot, torch.arange(frames), facing_cameras(frames), torch.tensor([3.0 * size, size / 2, size / 2]), size, size)


def face_landmarks(frames: int, seed: int = 0) -> torch.Tensor:
    """68 points spread over a face-sized patch at the front of the head (z 0.4 .. 1.2 dm)."""
    g = torch.Generator().manual_seed(seed)
    points = torch.rand(frames, 68, 3, generator=g) * torch.tensor([1.4, 1.6, 0.8]) - torch.tensor([0.7, 1.2, -0.4])
    return points


def conditions(frames: int = 2, seed: int = 0, *, audio: bool = False, blink: bool = False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {"landmarks": face_landmarks(frames, seed), "pose": facing_cameras(frames)}
    if audio:
        out["audio"] = torch.randn(frames, AUDIO.dim, generator=g)
    if blink:
        out["blink"] = torch.rand(frames, 1, generator=g)
    return out


# -- contract, ports, params -------------------------------------------------------------------------


def test_contract():
    check_component(LandmarkNerf)


def test_contract_without_audio_or_blink_and_small():
    check_component(LandmarkNerf, params=SMALL, inputs={"landmarks": LANDMARKS, "pose": Pose(FPS)}, check_import=False)


def test_ports_and_params():
    component = LandmarkNerf(LandmarkNerf.Params(), {"landmarks": LANDMARKS, "pose": Pose(FPS)}, GraphContext(video_fps=FPS, image_size=256))
    assert component.outputs() == {"rgba": Frames(256, 256, FPS)}
    assert LandmarkNerf.accepts("audio").required is False and LandmarkNerf.accepts("blink").required is False
    assert LandmarkNerf.accepts("landmarks").mismatches(Landmarks(68, 2, FPS), FPS)  # image-space landmarks are not 3D
    with pytest.raises(ValidationError):
        LandmarkNerf.Params(nearest=8)  # unknown keys are errors
    with pytest.raises(ValidationError, match="resolution must be >= 2"):
        LandmarkNerf.Params(resolutions=[64, 1])


# -- the Gaussian coding -----------------------------------------------------------------------------


def test_gaussian_weights_are_exp_of_minus_half_the_squared_mahalanobis_distance():
    """Identity rotation, scales (0.1, 0.2, 0.4) dm: u = offset / scale, and w = exp(-|u|^2 / 2) exactly."""
    coding = build({"cutoff": 0}).coding  # no cut-off: the exact weights
    scales = torch.tensor([0.1, 0.2, 0.4])
    with torch.no_grad():
        coding.log_scales.copy_(scales.log().expand(68, 3))
    centre = torch.tensor([[0.3, -0.5, 0.9]])
    offsets = torch.tensor([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.0, 0.2, 0.0], [0.0, 0.0, -0.4], [0.05, -0.1, 0.2], [0.3, 0.0, 0.0]])
    points = (centre + offsets)[None]  # one row of 6 points
    assert torch.allclose(coding.local(points, centre, torch.tensor([7]))[0], offsets / scales, atol=1e-6)
    # Landmark 7 at the centre, the others 50 dm away (weight exactly 0): the coverage, the sum of
    # the weights (not normalised while it is below 1), is landmark 7's weight.
    landmarks = torch.full((1, 68, 3), 50.0)
    landmarks[0, 7] = centre[0]
    _, coverage = coding(points, landmarks)
    expected = torch.tensor([1.0, math.exp(-0.5), math.exp(-0.5), math.exp(-0.5), math.exp(-0.5 * 0.75), math.exp(-4.5)])
    assert torch.allclose(coverage[0], expected, rtol=1e-6, atol=0)


def test_gaussian_frames_follow_their_rotation():
    """A quarter turn about z maps the Gaussian's x axis onto the world's y axis: an offset along y is along its x."""
    coding = build({"cutoff": 0}).coding
    with torch.no_grad():
        coding.quaternions[0] = torch.tensor([math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4)])
        coding.log_scales[0] = torch.tensor([0.1, 0.3, 1.0]).log()
    local = coding.local(torch.tensor([[[0.0, 0.1, 0.0], [-0.3, 0.0, 0.0]]]), torch.zeros(1, 3), torch.tensor([0]))
    assert torch.allclose(local[0], torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), atol=1e-6)


def test_cutoff_subtracts_the_weight_at_the_cutoff_and_normalises_overlaps():
    coding = build({"cutoff": 3.0}).coding
    centre = torch.tensor([[0.0, 0.0, 1.0]])
    distances = torch.tensor([0.0, 0.1, 0.2, 0.29, 0.31, 0.5])  # along x at scale 0.1: 0 .. 5 sigma
    points = (centre + distances[:, None] * torch.tensor([1.0, 0.0, 0.0]))[None]
    lone = torch.cat([centre, torch.full((67, 3), 50.0)])[None]  # every other landmark far away
    _, coverage = coding(points, lone)
    floor = math.exp(-4.5)
    expected = (torch.exp(-0.5 * (distances / 0.1) ** 2) - floor).clamp(min=0)
    assert torch.allclose(coverage[0], expected, atol=1e-6)
    assert coverage[0, 4] == 0 and coverage[0, 5] == 0  # beyond 3 sigma: not coded at all
    stacked = torch.cat([centre.expand(3, 3), torch.full((65, 3), 50.0)])[None]  # three landmarks on one spot
    _, coverage = coding(points, stacked)
    assert torch.allclose(coverage[0, :2], torch.ones(2))  # 3 x (1 - floor) > 1: normalised to sum to 1


def test_culling_by_ray_keeps_every_pair_within_the_cutoff():
    """The per-ray pre-selection of landmarks changes nothing: codes equal those of coding every pair."""
    coding = build({"cutoff": 3.0}).coding
    with torch.no_grad():
        coding.quaternions.normal_()
        coding.log_scales.uniform_(math.log(0.03), math.log(0.1))
    g = torch.Generator().manual_seed(1)
    starts = torch.rand(64, 1, 3, generator=g) * 2 - 1
    directions = F.normalize(torch.randn(64, 1, 3, generator=g), dim=-1)
    points = starts + torch.linspace(0, 1.5, 24)[None, :, None] * directions  # 64 rays of 24 ordered samples
    landmarks = face_landmarks(64, seed=2) - torch.tensor([0.0, 0.0, 0.8])
    every_pair = copy.deepcopy(coding)
    rows, count = landmarks.shape[:2]
    every_pair.candidates = lambda p, lm: tuple(i.flatten() for i in torch.meshgrid(torch.arange(rows), torch.arange(count), indexing="ij"))
    code, coverage = coding(points, landmarks)
    all_code, all_coverage = every_pair(points, landmarks)
    assert (coverage > 0).float().mean() > 0.1  # the test has overlaps to lose
    assert len(coding.candidates(points, landmarks)[0]) < rows * count / 4  # and the culling drops most pairs
    assert torch.allclose(code, all_code, atol=1e-6) and torch.allclose(coverage, all_coverage, atol=1e-6)


# -- outputs -----------------------------------------------------------------------------------------


def test_outputs_have_the_contract_shapes_and_ranges():
    module = build(audio=True, blink=True).eval()
    with torch.no_grad():
        out = module(random_batch(), conditions(audio=True, blink=True))
    assert set(out) == {"rgba", "depth", "reg_ambient", "reg_entropy", "reg_eye"}
    assert out["rgba"].shape == (300, 4) and out["reg_ambient"].shape == (300, 2)  # landmark coverage, audio gate
    for name in ("depth", "reg_entropy", "reg_eye"):
        assert out[name].shape == (300,), name
    for name, value in out.items():
        assert torch.isfinite(value).all(), name
    rgba = out["rgba"]
    assert rgba.min() >= 0 and rgba.max() <= 1
    assert (rgba[:, :3] <= rgba[:, 3:] + 1e-6).all()  # premultiplied: colour never exceeds alpha
    assert rgba[:, 3].max() > 0.01
    assert out["reg_ambient"].min() >= 0 and out["reg_ambient"].max() <= 1
    assert out["reg_ambient"][:, 0].max() > 0  # some rays pass through the landmarks' Gaussians


def test_without_audio_or_blink_the_ambient_term_is_the_landmark_coverage():
    module = build().eval()
    with torch.no_grad():
        out = module(random_batch(), conditions())
    assert set(out) == {"rgba", "depth", "reg_ambient", "reg_entropy"}
    assert out["reg_ambient"].shape == (300,)


def test_audio_reaches_the_image_only_through_the_gate():
    module = build(audio=True).eval()
    batch, quiet, loud = random_batch(frames=1), conditions(1, seed=1, audio=True), conditions(1, seed=2, audio=True)
    loud["landmarks"] = quiet["landmarks"]
    with torch.no_grad():
        assert not torch.allclose(module(batch, quiet)["rgba"], module(batch, loud)["rgba"])
        module.audio_gate.layers[-1].weight.zero_()
        module.audio_gate.layers[-1].bias.fill_(-1e4)  # the gate is shut everywhere
        assert torch.equal(module(batch, quiet)["rgba"], module(batch, loud)["rgba"])


def test_deterministic_and_the_same_in_chunks():
    module = build().eval()
    batch = PixelBatch.full_frames(facing_cameras(1), torch.tensor([96.0, 16.0, 16.0]), 32, 32, torch.tensor([0]))
    with torch.no_grad():
        whole, again = module(batch, conditions(1)), module(batch, conditions(1))
        module.chunk = 333
        chunked = module(batch, conditions(1))
    assert all(torch.equal(whole[k], again[k]) for k in whole)
    assert torch.allclose(whole["rgba"], chunked["rgba"], atol=1e-6)


def test_gradient_reaches_gaussians_planes_heads_codes_and_the_landmarks():
    module = build(audio=True, blink=True).train()
    cond = conditions(audio=True, blink=True)
    cond["landmarks"].requires_grad_(True)  # an upstream landmark predictor can learn through the renderer
    out = module(random_batch(), cond)
    (out["rgba"].sum() + out["reg_ambient"].sum()).backward()
    named = dict(module.named_parameters())
    for name in (
        "coding.quaternions",
        "coding.log_scales",
        "coding.identity",
        "coding.project.weight",
        "planes.levels.1.plane_coefs.0",
        "density_net.layers.0.weight",
        "colour_net.layers.0.weight",
        "audio_gate.layers.0.weight",
        "audio_net.layers.0.weight",
        "codes.table.weight",
    ):
        grad = named[name].grad
        assert grad is not None and grad.abs().sum() > 0, name
    assert cond["landmarks"].grad.abs().sum() > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_cuda():
    module = build(audio=True, blink=True).cuda().train()
    out = module(random_batch(), conditions(audio=True, blink=True))
    out["rgba"].sum().backward()
    assert out["rgba"].device.type == "cuda"
    with torch.no_grad():
        assert module.eval()(random_batch(), conditions(audio=True, blink=True))["rgba"].device.type == "cuda"


# -- the subject: locality and learning -----------------------------------------------------------------


def render(module: torch.nn.Module, frame: SmallFrame, landmarks: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module(frame.full(), {"landmarks": landmarks, "pose": frame.pose})["rgba"]


def test_moving_a_lip_landmark_changes_the_render_near_the_mouth_only(subject):
    frame = SmallFrame(subject)
    module = build().eval()
    moved = frame.landmarks.clone()
    moved[0, LOWER_LIP, 1] -= 0.15  # the lower lip drops 1.5 cm
    change = (render(module, frame, frame.landmarks) - render(module, frame, moved)).abs().amax(dim=-1)
    distance = frame.distance_to(frame.landmarks2d[LOWER_LIP])
    # 3 sigma (0.3 dm) around both positions of the landmark is under 3 px at this camera (focal 96 px, 11 dm away).
    assert change[distance < 3].max() > 1e-5
    assert change[distance > 6].max() == 0


def test_learns_a_frame_and_its_lip_landmark_stays_local(subject):
    """Overfit the head of one 32 px frame from random rays: the loss falls 10x within 120 steps."""
    frame = SmallFrame(subject)
    target = torch.where(frame.head[:, None], frame.rgb, frame.background)  # the head over the plate
    module = build({"resolutions": [16, 64], "hidden": 32, "coarse_samples": 16, "fine_samples": 8, "occupancy": 16}).train()
    cond = {"landmarks": frame.landmarks, "pose": frame.pose}

    def error() -> float:
        return float((over_background(render(module.eval(), frame, frame.landmarks), frame.background) - target).square().mean())

    before = error()
    optimiser = torch.optim.Adam(module.parameters(), lr=1e-2, betas=(0.9, 0.99), eps=1e-15)
    generator = torch.Generator().manual_seed(0)
    module.train()
    for _ in range(120):
        rays = torch.randint(0, frame.size**2, (512,), generator=generator)
        out = module(frame.pick(rays), cond)
        loss = (over_background(out["rgba"], frame.background[rays]) - target[rays]).square().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    after = error()
    assert after < before / 10
    rendered = over_background(render(module, frame, frame.landmarks), frame.background)
    assert psnr(rendered, target) > 28

    moved = frame.landmarks.clone()
    moved[0, LOWER_LIP, 1] -= 0.15
    change = (rendered - over_background(render(module, frame, moved), frame.background)).abs().amax(dim=-1)
    distance = frame.distance_to(frame.landmarks2d[LOWER_LIP])
    assert change[distance < 3].max() > 1e-3
    assert change[distance > 6].max() == 0


# -- the density cache (opt-in) -------------------------------------------------------------------------


def test_training_keeps_the_mean_landmarks_as_the_neutral_face():
    module = build(audio=True).train()
    first, second = conditions(2, seed=0, audio=True), conditions(3, seed=1, audio=True)
    module(random_batch(2), first)
    module(random_batch(3), second)
    seen = torch.cat([first["landmarks"], second["landmarks"]])
    assert float(module.neutral_frames) == 5
    assert torch.allclose(module.neutral_landmarks, seen.mean(dim=0), atol=1e-6)
    with torch.no_grad():
        module.eval()(random_batch(2), conditions(2, seed=2, audio=True))  # rendering does not move it
    assert torch.allclose(module.neutral_landmarks, seen.mean(dim=0), atol=1e-6)


def test_density_cache_places_the_samples_once_the_neutral_face_is_known():
    assert build().density_cache is None  # off by default
    fast = build({"density_cache": 16, "occupancy": 16}).eval()
    occupy_a_central_block(fast)
    reference = copy.deepcopy(fast)
    reference.density_cache = None
    batch = PixelBatch.full_frames(facing_cameras(1), torch.tensor([96.0, 16.0, 16.0]), 32, 32, torch.tensor([0]))
    cond = conditions(1)
    with torch.no_grad():
        assert torch.equal(fast(batch, cond)["rgba"], reference(batch, cond)["rgba"])  # no neutral face yet: the coarse pass
        fast.observe_landmarks(cond["landmarks"])
        reference.observe_landmarks(cond["landmarks"])
        fast(batch, cond)  # samples the cache
        assert 0 < int((fast.density_cache.density > 0).sum()) < 16**3  # the occupied cells only
        fast_points, reference_points = counting_field(fast), counting_field(reference)
        quick, slow = fast(batch, cond), reference(batch, cond)
    assert sum(fast_points) < 0.6 * sum(reference_points)  # the fine samples only: 4 of 8 + 4 a ray
    assert (quick["rgba"][:, 3] > 0).any()
    assert torch.equal(quick["rgba"][slow["rgba"][:, 3] == 0], slow["rgba"][slow["rgba"][:, 3] == 0])  # the grid skips the same rays
    assert psnr(quick["rgba"], slow["rgba"]) > 30
    assert not any("density_cache" in key for key in fast.state_dict())  # derived data, not weights


def test_a_run_saved_before_the_neutral_face_was_kept_loads_and_uses_the_coarse_pass():
    old = {k: v for k, v in build().state_dict().items() if not k.startswith("neutral_")}
    module = build({"density_cache": 16})
    module.load_state_dict(old)  # strict
    assert float(module.neutral_frames) == 0 and not module.neutral_landmarks.any()
