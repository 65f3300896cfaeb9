"""`torso-2d`: ER-NeRF's image-space torso behind the head."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch
from pydantic import ValidationError

from thkit.core import Frames, GraphContext, Pose
from thkit.core.pixels import PixelBatch
from thkit.plugins.renderers.torso_2d import Torso2d
from thkit.render.nerf.compose import over_background
from thkit.testing import check_component
from tests.plugins.renderers.frames import Frame, psnr

FPS = Fraction(25)
PORTS = {"head": Frames(64, 64, FPS), "pose": Pose(FPS)}


def build(params: dict | None = None, n_frames: int = 25) -> torch.nn.Module:
    torch.manual_seed(0)
    return Torso2d(Torso2d.Params(**(params or {})), PORTS, GraphContext(video_fps=FPS, image_size=64, n_frames=n_frames)).build()


def camera(x: float = 0.0, y: float = -0.5) -> torch.Tensor:
    pose = torch.eye(4)
    pose[:3, 3] = torch.tensor([x, y, 12.0])
    return pose[None]


def batch(rays: int = 200, seed: int = 0, pose: torch.Tensor | None = None) -> PixelBatch:
    g = torch.Generator().manual_seed(seed)
    pose = camera() if pose is None else pose
    return PixelBatch(torch.rand(rays, 2, generator=g) * 64, torch.zeros(rays, dtype=torch.long), torch.tensor([3]), pose, torch.tensor([192.0, 32.0, 32.0]), 64, 64)


def head_rgba(rays: int, seed: int = 1) -> torch.Tensor:
    """Premultiplied rgba: a third of the rays opaque head, a third half-covered, a third empty."""
    g = torch.Generator().manual_seed(seed)
    alpha = torch.tensor([1.0, 0.5, 0.0]).repeat(rays // 3 + 1)[:rays, None]
    return torch.cat([torch.rand(rays, 3, generator=g) * alpha, alpha], dim=-1)


def test_contract():
    check_component(Torso2d)


def test_ports_and_params():
    component = Torso2d(Torso2d.Params(), PORTS, GraphContext(video_fps=FPS, image_size=512))
    assert component.outputs() == {"rgba": Frames(512, 512, FPS)}
    with pytest.raises(ValidationError):
        Torso2d.Params(grid=3)
    with pytest.raises(ValidationError, match="resolution must be >= 2"):
        Torso2d.Params(resolutions=[1])


def test_head_is_composited_over_the_torso():
    module = build().eval()
    head = head_rgba(200)
    with torch.no_grad():
        out = module(batch(), {"head": head, "pose": camera()})
    assert set(out) == {"rgba", "reg_entropy", "reg_deform"}
    rgba = out["rgba"]
    assert rgba.shape == (200, 4) and out["reg_entropy"].shape == (200,) and out["reg_deform"].shape == (200,)
    assert rgba.min() >= 0 and rgba.max() <= 1
    assert (rgba[:, :3] <= rgba[:, 3:] + 1e-6).all()
    opaque, half, empty = (head[:, 3] == a for a in (1.0, 0.5, 0.0))
    assert torch.equal(rgba[opaque], head[opaque])  # an opaque head hides the torso
    assert (rgba[half, 3] >= 0.5).all()
    assert not torch.equal(rgba[empty], head[empty])  # the torso shows where the head is empty


def test_pose_moves_the_torso():
    module = build().eval()
    empty = torch.zeros(200, 4)
    with torch.no_grad():
        here = module(batch(), {"head": empty, "pose": camera()})["rgba"]
        there = module(batch(pose=camera(x=0.3)), {"head": empty, "pose": camera(x=0.3)})["rgba"]
    assert not torch.allclose(here, there)
    projected = module.project_anchors(torch.cat([camera(), camera(x=0.3)]), batch())
    # The camera moved right by 0.3 dm: every anchor moves left by 0.3 * focal / depth pixels, in [-1, 1] units.
    shift = projected[1, 0::2] - projected[0, 0::2]
    expected = -0.3 * 192 / (12 - module.anchors[:, 2].detach()) / 64 * 2
    assert torch.allclose(shift, expected, atol=1e-5)


def test_deterministic_in_eval_mode():
    module = build().eval()
    with torch.no_grad():
        first = module(batch(), {"head": head_rgba(200), "pose": camera()})
        second = module(batch(), {"head": head_rgba(200), "pose": camera()})
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_gradient_reaches_anchors_grids_and_mlps():
    module = build().train()
    out = module(batch(), {"head": torch.zeros(200, 4), "pose": camera()})
    (out["rgba"].sum() + out["reg_deform"].sum()).backward()
    for name, parameter in module.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_learns_the_torso_of_a_frame_behind_a_fixed_head(subject):
    frame = Frame(subject, 0)
    head, torso = frame.labels == 2, frame.labels == 1
    head_layer = torch.where(head[:, None], torch.cat([frame.rgb, torch.ones(frame.size**2, 1)], dim=-1), torch.zeros(1, 4))
    target = torch.where((head | torso)[:, None], frame.rgb, frame.background)
    module = build().train()
    optimiser = torch.optim.Adam(module.parameters(), lr=1e-2, betas=(0.9, 0.99), eps=1e-15)
    generator = torch.Generator().manual_seed(0)
    for _ in range(150):
        rays = torch.randint(0, frame.size**2, (1024,), generator=generator)
        out = module(frame.pick(rays), {"head": head_layer[rays], "pose": frame.pose})
        loss = (over_background(out["rgba"], frame.background[rays]) - target[rays]).square().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    module.eval()
    with torch.no_grad():
        out = module(frame.full(), {"head": head_layer, "pose": frame.pose})  # the whole 64 x 64 frame at once
    rendered = over_background(out["rgba"], frame.background)
    assert out["rgba"].shape == (64 * 64, 4)
    assert psnr(rendered[torso], target[torso]) > 22
    assert psnr(rendered, target) > 27
    assert torch.equal(rendered[head], frame.rgb[head])


def test_rendering_skips_transparent_background_without_changing_the_frame(monkeypatch):
    """Without gradient a coarse pass finds where the torso can show; the frame equals the full evaluation."""
    from thkit.plugins.renderers import _torso_2d_module as torso_module

    module = build().eval()
    evaluated: list[int] = []
    real = module.torso

    def collar(xy, slot, anchors, latent):  # the real network, made transparent above a soft edge (the upper 60%)
        evaluated.append(len(xy))
        rgba, offset = real(xy, slot, anchors, latent)
        return rgba * torch.sigmoid((xy[:, 1:2] - 0.2) * 40), offset

    monkeypatch.setattr(module, "torso", collar)
    frame = PixelBatch.full_frames(camera(), torch.tensor([192.0, 32.0, 32.0]), 64, 64, torch.tensor([3]))
    head = torch.zeros(frame.n_rays, 4)
    with torch.no_grad():
        fast = module(frame, {"head": head, "pose": camera()})["rgba"]
    coarse, fine = evaluated
    assert coarse == (64 // torso_module.COARSE) ** 2
    assert fine < 0.6 * frame.n_rays  # the transparent upper part was skipped
    evaluated.clear()
    with torch.enable_grad():
        full = module(frame, {"head": head, "pose": camera()})["rgba"].detach()
    assert evaluated == [frame.n_rays]
    assert (fast - full).abs().max() <= torso_module.VISIBLE_ALPHA
    assert full[:, 3].max() > 0.3  # there is torso to draw


def test_few_pixels_per_frame_are_evaluated_directly():
    module = build().eval()
    with torch.no_grad():
        few = module(batch(), {"head": torch.zeros(200, 4), "pose": camera()})["rgba"]
    assert module.visible(batch(), module.pose_encoding(module.project_anchors(camera(), batch())), None) is None
    assert few.shape == (200, 4)
