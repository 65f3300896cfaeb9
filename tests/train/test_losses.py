"""Loss terms by value, their catalogue, and the validation of stages' losses (the `check_graph` plugin)."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch

from thkit.core.errors import SpecError
from thkit.core.graph import load_graph
from thkit.train import lpips as lpips_module
from thkit.train.losses import LOSSES, LossInputs, default_losses, structural_similarity
from tests.train.conftest import save_random_lpips_weights
from tests.train.toys import toy_registry

SPEC = """\
thkit: 1
name: checked
data: {{synthetic: {{seconds: 2, size: 64}}}}
nodes:
  mel: {{kind: encoder, type: mel, params: {{n_mels: 16, hop_ms: 20}}, inputs: {{audio: $audio}}}}
  sync: {{kind: encoder, type: sync, params: {{dim: 16}}, inputs: {{audio: $audio}}}}
  fuse: {{kind: fusion, type: toy-fusion, inputs: {{features: mel.features}}}}
  a2l: {{kind: conditioning, type: toy-landmarks, inputs: {{features: mel.features}}}}
  head: {{kind: renderer, type: pixel-field, inputs: {{audio: fuse.code}}}}
train:
  stages:
{stages}
"""


def problems(stages: str, registry=None) -> list[str]:
    try:
        load_graph("checked.yaml", text=SPEC.format(stages=stages), components=registry or toy_registry())
    except SpecError as error:
        return [problem.format() for problem in error.problems]
    return []


def test_colour_terms_by_value():
    rgb, target = torch.tensor([[0.0, 0.5, 1.0]]), torch.tensor([[0.5, 0.5, 0.5]])
    inputs = LossInputs(rgb=rgb, target=target)
    assert LOSSES["rgb"].compute(inputs).item() == pytest.approx(1 / 6)
    assert LOSSES["l1"].compute(inputs).item() == pytest.approx(1 / 3)


def test_ssim_is_zero_for_equal_patches_and_grows_with_noise():
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(2 * 32 * 32, 3, generator=generator)
    same = LossInputs(rgb=image, target=image, patch=32)
    noisy = LossInputs(rgb=(image + 0.3 * torch.randn(image.shape, generator=generator)).clamp(0, 1), target=image, patch=32)
    assert LOSSES["ssim"].compute(same).item() == pytest.approx(0, abs=1e-5)
    assert LOSSES["ssim"].compute(noisy).item() > 0.2
    assert LOSSES["ssim"].patches and not LOSSES["rgb"].patches
    flat = torch.full((1, 3, 16, 16), 0.5)
    assert structural_similarity(flat, flat).item() == pytest.approx(1.0)


def test_entropy_of_alpha_and_of_reg_entropy():
    half = torch.tensor([[0.25, 0.25, 0.25, 0.5]] * 4)
    inputs = LossInputs(rgb=half[:, :3], renders={"head": {"rgba": half}})
    assert LOSSES["entropy"].compute(inputs).item() == pytest.approx(math.log(2), rel=1e-4)
    inputs.renders["torso"] = {"rgba": half, "reg_entropy": torch.tensor([0.1, 0.3])}
    assert LOSSES["entropy"].compute(inputs).item() == pytest.approx(math.log(2) + 0.2, rel=1e-4)


def test_ambient_counts_only_rays_outside_the_head():
    labels = torch.tensor([2, 2, 1, 0])
    ambient = torch.tensor([5.0, -5.0, 0.5, -1.5])
    inputs = LossInputs(rgb=torch.zeros(4, 3), labels=labels, renders={"head": {"rgba": torch.zeros(4, 4), "reg_ambient": ambient}})
    assert LOSSES["ambient"].compute(inputs).item() == pytest.approx(1.0)


def test_ambient_without_a_renderer_that_returns_it_says_so():
    inputs = LossInputs(rgb=torch.zeros(2, 3), labels=torch.zeros(2), renders={"head": {"rgba": torch.zeros(2, 4)}})
    with pytest.raises(Exception, match="needs a renderer that returns 'reg_ambient', and none of head does"):
        LOSSES["ambient"].compute(inputs)


def test_landmark_terms_are_smooth_l1_in_face_sizes():
    face = torch.zeros(4, 68, 3)
    face[:, :, 0] = torch.linspace(0, 2, 68)  # a face 2 units wide
    far = face + torch.tensor([0.1, 0.0, 0.0])  # 0.05 face sizes off in x: the linear zone
    near = face + torch.tensor([0.002, 0.0, 0.0])  # 0.001 face sizes: the quadratic zone (beta 0.01)
    l1, velocity = LOSSES["landmarks_l1"], LOSSES["landmarks_velocity"]
    assert l1.compute(LossInputs(landmarks=[(far, face)])).item() == pytest.approx((0.05 - 0.005) / 3)
    assert l1.compute(LossInputs(landmarks=[(near, face)])).item() == pytest.approx(0.5 * 0.001**2 / 0.01 / 3, rel=1e-4)
    assert l1.compute(LossInputs(landmarks=[(10 * far, 10 * face)])).item() == pytest.approx((0.05 - 0.005) / 3)  # any unit
    assert velocity.compute(LossInputs(landmarks=[(far, face)])).item() == 0  # a constant offset does not move
    jitter = face.clone()
    jitter[1::2, :, 0] += 0.1  # 0.05 face sizes back and forth each frame
    assert velocity.compute(LossInputs(landmarks=[(jitter, face)])).item() == pytest.approx((0.05 - 0.005) / 3)
    assert all(LOSSES[name].landmarks and not LOSSES[name].renders for name in ("landmarks", "landmarks_l1", "landmarks_velocity"))


def test_every_loss_has_a_docstring():
    for loss in LOSSES.values():
        assert len(loss.summary) > 20 and loss.summary.endswith("."), loss.name


def test_default_losses_follow_what_a_stage_trains():
    graph = load_graph("checked.yaml", text=SPEC.format(stages="    - {name: s, train: [sync], steps: 1}"), components=toy_registry())
    stages = {
        "sync": {"sync": 1.0},
        "a2l": {"landmarks": 1.0},
        "head": {"rgb": 1.0},
    }
    for train, expected in stages.items():
        stage = graph.spec.train.stages[0].model_copy(update={"train": [train]})
        assert default_losses(graph, stage) == expected
    stage = graph.spec.train.stages[0].model_copy(update={"train": ["head"], "losses": {"l1": 2.0}})
    assert default_losses(graph, stage) == {"l1": 2.0}


def test_unknown_loss_gets_a_did_you_mean(checks_plugin):
    found = problems("    - {name: head, train: [fuse, head], steps: 10, losses: {rbg: 1.0, ssim: -1}}")
    assert found == [
        "checked.yaml:12:61: train.stages.0.losses.rbg: unknown loss 'rbg' (did you mean 'rgb'?); "
        "losses: ambient, entropy, l1, landmarks, landmarks_l1, landmarks_velocity, lpips, rgb, ssim, sync",
        "checked.yaml:12:77: train.stages.0.losses.ssim: loss weight must be 0 or more, got -1.0",
    ]


def test_stage_problems_sync_landmarks_and_empty(checks_plugin):
    found = problems(
        "    - {name: a, train: [sync, fuse], steps: 10, losses: {sync: 1.0, rgb: 1.0}}\n"
        "    - {name: b, train: [head], steps: 10, losses: {landmarks: 1.0}}\n"
        "    - {name: c, train: [], steps: 10}"
    )
    assert found == [
        "checked.yaml:12:31: train.stages.0.train.1: 'fuse' (toy-fusion) is not a sync encoder; the sync loss fits sync encoders only",
        "checked.yaml:12:57: train.stages.0.losses: the sync loss is fitted by its own loop and cannot share a stage with rgb; "
        "give them a stage of their own",
        "checked.yaml:13:52: train.stages.1.losses.landmarks: stage 'b' trains no node with a Landmarks(68, 3) output for the landmarks loss",
        "checked.yaml:14:24: train.stages.2.train: stage 'c' trains no node; list the nodes it trains (nodes: a2l, fuse, head, mel, sync)",
    ]


def test_every_landmark_term_needs_a_landmark_predictor(checks_plugin):
    found = problems("    - {name: b, train: [head], steps: 10, losses: {landmarks_l1: 1.0, landmarks_velocity: 0.5}}")
    assert [problem.split(": ", 2)[1:] for problem in found] == [
        ["train.stages.0.losses.landmarks_l1", "stage 'b' trains no node with a Landmarks(68, 3) output for the landmarks_l1 loss"],
        ["train.stages.0.losses.landmarks_velocity", "stage 'b' trains no node with a Landmarks(68, 3) output for the landmarks_velocity loss"],
    ]
    assert problems("    - {name: a2l, train: [a2l], steps: 10, losses: {landmarks_l1: 1.0, landmarks_velocity: 0.5}}") == []


def test_valid_stages_pass(checks_plugin):
    assert problems(
        "    - {name: sync, train: [sync], steps: 10}\n"
        "    - {name: a2l, train: [a2l], steps: 10}\n"
        "    - {name: head, train: [fuse, head], steps: 10, losses: {rgb: 1.0, ssim: 0.1, ambient: 0.001, entropy: 0.001}}"
    ) == []


def test_lpips_without_weights_says_where_to_put_them(checks_plugin, monkeypatch, tmp_path):
    monkeypatch.setenv("THKIT_WEIGHTS", str(tmp_path / "weights"))
    found = problems("    - {name: lips, train: [head], steps: 10, losses: {rgb: 1.0, lpips: 0.01}}")
    assert len(found) == 1
    assert "train.stages.0.losses.lpips: the lpips loss needs AlexNet weights, which no PyPI package ships: put" in found[0]
    assert f"{tmp_path / 'weights' / 'lpips' / 'alexnet'}.pth" in found[0] and f"{tmp_path / 'weights' / 'lpips' / 'alex'}.pth" in found[0]
    assert "set $THKIT_WEIGHTS" in found[0]


def test_lpips_with_weights_validates_and_loads(checks_plugin, monkeypatch, tmp_path):
    save_random_lpips_weights(tmp_path)
    monkeypatch.setenv("THKIT_WEIGHTS", str(tmp_path))
    assert problems("    - {name: lips, train: [head], steps: 10, losses: {rgb: 1.0, lpips: 0.01}}") == []
    network = lpips_module.Lpips()
    generator = torch.Generator().manual_seed(1)
    a, b = torch.rand(2, 3, 32, 32, generator=generator), torch.rand(2, 3, 32, 32, generator=generator)
    assert network(a, a).tolist() == [0.0, 0.0]
    assert (network(a, b) > 0).all()
    image = torch.rand(32 * 32, 3, generator=generator, requires_grad=True)
    LOSSES["lpips"].compute(LossInputs(rgb=image, target=b[0].permute(1, 2, 0).reshape(-1, 3), patch=32)).backward()
    assert image.grad.abs().sum() > 0


def test_validation_with_the_checks_plugin_imports_no_torch():
    probe = (
        "import sys; from thkit.core import hooks; import thkit.train.checks as checks; "
        "manager = hooks.plugin_manager(); manager.is_registered(checks) or manager.register(checks)\n"
        "from thkit.core.graph import load_graph; from thkit.core.errors import SpecError\n"
        "text = open('examples/audio-baseline.yaml').read() + 'train: {stages: [{name: a, train: [fuse], steps: 1, losses: {lpips: 1}}]}'\n"
        "try:\n    load_graph('x.yaml', text=text)\nexcept SpecError as error:\n    print(len(error.problems))\n"
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env={**os.environ, "THKIT_WEIGHTS": "/nonexistent"})
    assert result.stdout.split() == ["2", "False"], result.stderr  # no renderer, no lpips weights; and no torch
