"""`styleunet-torso`: the style-modulated UNet torso behind the head, and a landmark-path spec that trains."""

from __future__ import annotations

import json
import wave
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from pydantic import ValidationError

from thkit.core import Frames, GraphContext, Landmarks, Pose
from thkit.core.graph import load_graph
from thkit.core.pixels import PixelBatch
from thkit.plugins.renderers._styleunet_torso_module import ModulatedConv, project
from thkit.plugins.renderers.styleunet_torso import StyleUnetTorso
from thkit.render.nerf.compose import over_background
from thkit.testing import check_component
from thkit.train.losses import structural_similarity
from tests.plugins.renderers.frames import psnr
from tests.plugins.renderers.test_landmark_nerf import SmallFrame

FPS = Fraction(25)
SIZE = 32
SMALL = {"resolution": 32, "levels": 2}


def build(params: dict | None = None, n_frames: int = 25) -> torch.nn.Module:
    torch.manual_seed(0)
    ports = {"head": Frames(SIZE, SIZE, FPS), "pose": Pose(FPS)}
    return StyleUnetTorso(StyleUnetTorso.Params(**(SMALL | (params or {}))), ports, GraphContext(video_fps=FPS, image_size=SIZE, n_frames=n_frames)).build()


def camera(x: float = 0.0, y: float = -0.5) -> torch.Tensor:
    pose = torch.eye(4)
    pose[:3, 3] = torch.tensor([x, y, 12.0])
    return pose[None]


INTRINSICS = torch.tensor([96.0, 16.0, 16.0])


def full_frame(pose: torch.Tensor | None = None) -> PixelBatch:
    return PixelBatch.full_frames(camera() if pose is None else pose, INTRINSICS, SIZE, SIZE, torch.tensor([3]))


def subset(batch: PixelBatch, rows: torch.Tensor) -> PixelBatch:
    return PixelBatch(batch.pixels[rows], batch.slot[rows], batch.frame_ids, batch.camera_to_world, batch.intrinsics, batch.height, batch.width)


def head_rgba(rays: int, seed: int = 1) -> torch.Tensor:
    """Premultiplied rgba: a third of the rays opaque head, a third half-covered, a third empty."""
    g = torch.Generator().manual_seed(seed)
    alpha = torch.tensor([1.0, 0.5, 0.0]).repeat(rays // 3 + 1)[:rays, None]
    return torch.cat([torch.rand(rays, 3, generator=g) * alpha, alpha], dim=-1)


# -- contract, ports, params -------------------------------------------------------------------------


def test_contract():
    check_component(StyleUnetTorso)


def test_ports_and_params():
    component = StyleUnetTorso(StyleUnetTorso.Params(), {"head": Frames(512, 512, FPS), "pose": Pose(FPS)}, GraphContext(video_fps=FPS, image_size=512))
    assert component.outputs() == {"rgba": Frames(512, 512, FPS)}
    with pytest.raises(ValidationError):
        StyleUnetTorso.Params(adain=True)  # unknown keys are errors
    with pytest.raises(ValidationError, match="divisible by 2\\^levels = 16"):
        StyleUnetTorso.Params(resolution=72, levels=4)


# -- outputs -----------------------------------------------------------------------------------------


def test_head_is_composited_over_the_torso():
    module = build().eval()
    batch = full_frame()
    head = head_rgba(batch.n_rays)
    with torch.no_grad():
        out = module(batch, {"head": head, "pose": camera()})
    assert set(out) == {"rgba", "reg_entropy"}
    rgba = out["rgba"]
    assert rgba.shape == (SIZE * SIZE, 4) and out["reg_entropy"].shape == (SIZE * SIZE,)
    assert rgba.min() >= 0 and rgba.max() <= 1
    assert (rgba[:, :3] <= rgba[:, 3:] + 1e-6).all()  # premultiplied
    opaque, half, empty = (head[:, 3] == a for a in (1.0, 0.5, 0.0))
    assert torch.equal(rgba[opaque], head[opaque])  # an opaque head hides the torso
    assert (rgba[half, 3] >= 0.5).all()
    assert not torch.equal(rgba[empty], head[empty])  # the torso shows where the head is empty


def test_a_pixel_does_not_depend_on_the_pixels_drawn_with_it():
    """Scattered rays (training), whole frames and chunks of rows (rendering) give each pixel the same rgba."""
    module = build().eval()
    batch = full_frame()
    head = head_rgba(batch.n_rays)
    with torch.no_grad():
        whole = module(batch, {"head": head, "pose": camera()})["rgba"]
        scattered = torch.randperm(batch.n_rays, generator=torch.Generator().manual_seed(0))[:100]
        some = module(subset(batch, scattered), {"head": head[scattered], "pose": camera()})["rgba"]
        rows = [module(subset(batch, torch.arange(i, i + 200)), {"head": head[i : i + 200], "pose": camera()})["rgba"] for i in range(0, 1000, 200)]
    assert torch.allclose(some, whole[scattered], atol=1e-6)
    assert torch.allclose(torch.cat(rows), whole[:1000], atol=1e-6)


def test_two_frames_in_one_batch_each_get_their_own_pose():
    module = build().eval()
    here, there = full_frame(), full_frame(camera(x=0.3))
    both = PixelBatch(
        torch.cat([here.pixels, there.pixels]), torch.cat([here.slot, there.slot + 1]), torch.tensor([3, 4]),
        torch.cat([camera(), camera(x=0.3)]), INTRINSICS, SIZE, SIZE,
    )  # fmt: skip
    empty = torch.zeros(SIZE * SIZE, 4)
    with torch.no_grad():
        alone = module(here, {"head": empty, "pose": camera()})["rgba"]
        together = module(both, {"head": torch.cat([empty, empty]), "pose": both.camera_to_world})["rgba"]
        there.frame_ids = torch.tensor([4])
        moved = module(there, {"head": empty, "pose": camera(x=0.3)})["rgba"]
    assert torch.allclose(together[: SIZE * SIZE], alone, atol=1e-6)
    assert torch.allclose(together[SIZE * SIZE :], moved, atol=1e-6)
    assert (alone - moved).abs().max() > 1e-5  # the pose moves the torso (a little, untrained)
    # The camera moved right by 0.3 dm: every anchor's projection moves left by 0.3 * focal / depth pixels.
    projected = project(module.anchors.detach(), torch.cat([camera(), camera(x=0.3)]), both)
    expected = -0.3 * 96 / (12 - module.anchors[:, 2].detach()) / SIZE * 2
    assert torch.allclose(projected[1, :, 0] - projected[0, :, 0], expected, atol=1e-5)


def test_demodulation_makes_a_convolution_blind_to_the_style_scale():
    """StyleGAN2's demodulation: the style sets how the input channels mix, not how loud the output is."""
    torch.manual_seed(0)
    conv = ModulatedConv(4, 6, 8)
    with torch.no_grad():
        conv.affine.bias.zero_()
    x, style = torch.randn(2, 4, 8, 8), torch.randn(2, 8)
    with torch.no_grad():
        once, louder, other = conv(x, style), conv(x, 3 * style), conv(x, torch.randn(2, 8))
    assert torch.allclose(once, louder, atol=1e-5)
    assert not torch.allclose(once, other, atol=1e-2)


def test_gradient_reaches_every_parameter():
    module = build().train()
    batch = full_frame()
    out = module(batch, {"head": head_rgba(batch.n_rays), "pose": camera()})
    (out["rgba"].sum() + out["reg_entropy"].sum()).backward()
    for name, parameter in module.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_cuda():
    module = build().cuda().train()
    batch = full_frame()
    out = module(batch, {"head": head_rgba(batch.n_rays), "pose": camera()})
    out["rgba"].sum().backward()
    assert out["rgba"].device.type == "cuda"


# -- learning ----------------------------------------------------------------------------------------


def test_learns_the_torso_of_a_frame_behind_a_fixed_head_with_l1_and_ssim(subject):
    """Overfit the torso of one 32 px frame with the trainer's L1 + SSIM terms: the loss falls 10x in 120 steps."""
    frame = SmallFrame(subject)
    pixels = SIZE * SIZE
    head_layer = torch.where(frame.head[:, None], torch.cat([frame.rgb, torch.ones(pixels, 1)], dim=-1), torch.zeros(1, 4))
    target = torch.where((frame.head | frame.torso)[:, None], frame.rgb, frame.background)
    module = build().train()
    optimiser = torch.optim.Adam(module.parameters(), lr=1e-2, betas=(0.9, 0.99))

    def image(rgb: torch.Tensor) -> torch.Tensor:
        return rgb.reshape(1, SIZE, SIZE, 3).permute(0, 3, 1, 2)

    def loss() -> tuple[torch.Tensor, torch.Tensor]:
        rendered = over_background(module(frame.full(), {"head": head_layer, "pose": frame.pose})["rgba"], frame.background)
        return (rendered - target).abs().mean() + 0.2 * (1 - structural_similarity(image(rendered), image(target)).mean()), rendered

    before = float(loss()[0].detach())
    for _ in range(120):
        value, _ = loss()
        optimiser.zero_grad()
        value.backward()
        optimiser.step()
    module.eval()
    with torch.no_grad():
        after, rendered = loss()
    assert float(after) < before / 10
    assert psnr(rendered[frame.torso], target[frame.torso]) > 25
    assert torch.equal(rendered[frame.head], frame.rgb[frame.head])


# -- a spec: landmark-nerf on tracked landmarks, styleunet-torso behind it ------------------------------

SPEC = """\
thkit: 1
name: landmark-head
data: {{dataset: {dataset}}}
nodes:
  head:
    kind: renderer
    type: landmark-nerf
    params: {{resolutions: [16, 32], channels: 4, hidden: 16, landmark_dim: 8, coarse_samples: 8, fine_samples: 4, occupancy: 8}}
    inputs: {{landmarks: $landmarks, pose: $pose, blink: $blink}}
  torso:
    kind: renderer
    type: styleunet-torso
    params: {{resolution: 32, levels: 2, channels: 4, style_dim: 16, features: 8, hidden: 16}}
    inputs: {{head: head.rgba, pose: $pose}}
train:
  stages:
    - {{name: head, train: [head], steps: 3, lr: 0.01, losses: {{rgb: 1.0, ambient: 0.001, entropy: 0.0001}}}}
    - {{name: torso, train: [torso], steps: 3, lr: 0.01, losses: {{l1: 1.0, ssim: 0.2}}}}
"""


def test_a_landmark_spec_with_a_styleunet_torso_validates_trains_and_renders(subject, tmp_path, monkeypatch):
    from thkit.render.pipeline import render_run
    from thkit.train import train
    from thkit.train.trainer import TrainOptions

    monkeypatch.setenv("THKIT_CACHE", str(tmp_path / "cache"))
    spec = tmp_path / "landmark-head.yaml"
    spec.write_text(SPEC.format(dataset=subject.root))
    graph = load_graph(spec)
    assert graph.port(graph.nodes["head"].inputs["landmarks"]) == Landmarks(68, 3, FPS)
    assert graph.nodes["torso"].outputs == {"rgba": Frames(64, 64, FPS)}

    # patch 64: the SSIM stage's patches are whole 64 px frames, so the torso stage sees the whole torso.
    options = TrainOptions(frames=2, rays=256, patch=64, log_every=1, preview_frames=1, render_chunk=4096)
    run = train(spec, tmp_path / "run", options=options, progress=False)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(line["stage"], line["stage_step"]) for line in lines] == [("head", 1), ("head", 2), ("head", 3), ("torso", 1), ("torso", 2), ("torso", 3)]
    assert all(np.isfinite(line["loss"]) for line in lines)
    assert set(lines[-1]["terms"]) == {"l1", "ssim"}
    assert (run / "preview.mp4").stat().st_size > 0

    clip = tmp_path / "clip.wav"  # 0.12 s of the subject's audio: 3 frames
    with wave.open(str(subject.root / "audio.wav")) as source, wave.open(str(clip), "wb") as out:
        out.setparams(source.getparams())
        out.writeframes(source.readframes(source.getframerate() * 3 // 25))
    video = render_run(run, tmp_path / "out.mp4", audio_path=clip, progress=False)
    with av.open(str(video)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == 3 and frames[0].shape == (64, 64, 3)
