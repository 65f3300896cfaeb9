"""`csfm`: DAMC's Cross-Synchronized Fusion Module."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch
from pydantic import ValidationError

from thkit.core import GraphContext, PortMismatch, Seq, SpecError, Timeline
from thkit.core.graph import load_graph
from thkit.core.timebase import window_indices
from thkit.plugins.fusion.csfm import CsfmFusion
from thkit.testing import check_component

SR = 16000
NTSC = Fraction(30000, 1001)
CONTENT = Seq(12, Fraction(50))  # e.g. hubert at 50 Hz, narrowed for speed
SYNC = Seq(6, NTSC)  # e.g. the sync encoder at the video rate


def make(params: dict | None = None, content: Seq = CONTENT, sync: Seq = SYNC, fps: Fraction = NTSC) -> CsfmFusion:
    return CsfmFusion(CsfmFusion.Params(**(params or {})), {"content": content, "sync": sync}, GraphContext(video_fps=fps))


def inputs_for(timeline: Timeline, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "content": torch.randn(timeline.frames(CONTENT.fps), CONTENT.dim, generator=g),
        "sync": torch.randn(timeline.frames(SYNC.fps), SYNC.dim, generator=g),
    }


@pytest.mark.parametrize("params", [{}, {"smooth": 8, "dim": 32, "heads": 2}])
def test_contract(params):
    check_component(CsfmFusion, params=params, check_import=not params)


def test_ports_and_params():
    assert make().outputs() == {"code": Seq(64, NTSC)}
    assert make({"dim": 48, "heads": 3}, fps=Fraction(25)).outputs() == {"code": Seq(48, Fraction(25))}
    with pytest.raises(ValidationError, match="heads=3 must divide dim=64"):
        CsfmFusion.Params(heads=3)
    with pytest.raises(ValidationError):
        CsfmFusion.Params(windows=4)  # unknown keys are errors


@pytest.mark.parametrize(
    ("params", "content", "sync", "name", "hint"),
    [
        ({"sync_window": 3}, CONTENT, Seq(80, Fraction(100)), "sync", "sync_window >= 4"),  # 30 ms < 1/30 s
        ({"content_window": 1}, CONTENT, SYNC, "content", "content_window >= 2"),  # 20 ms < 1/30 s
    ],
)
def test_windows_shorter_than_a_frame_are_port_mismatches(params, content, sync, name, hint):
    with pytest.raises(PortMismatch) as caught:
        make(params, content, sync).outputs()
    assert caught.value.input_name == name
    assert hint in caught.value.message
    make({"sync_window": 4}, content, Seq(80, Fraction(100))).outputs()  # 40 ms covers a 33 ms frame


def test_a_spec_wiring_a_too_short_window_is_reported_on_the_input():
    spec = """\
thkit: 1
name: t
data: {synthetic: {seconds: 2}}
nodes:
  mel: {kind: encoder, type: mel, inputs: {audio: $audio}}
  fuse: {kind: fusion, type: csfm, params: {sync_window: 2}, inputs: {content: mel.features, sync: mel.features}}
outputs: {code: fuse.code}
"""
    with pytest.raises(SpecError) as caught:
        load_graph(text=spec)
    [problem] = caught.value.problems
    assert problem.path == "nodes.fuse.inputs.sync"
    assert "use sync_window >= 4" in problem.message


@pytest.mark.parametrize("n_samples", [0, 500, 16000, 29_999])
def test_output_rows_follow_the_timeline_exactly(n_samples):
    module = make({"smooth": 4}).build().eval()
    timeline = Timeline(n_samples, SR)
    with torch.no_grad():
        code = module(inputs_for(timeline), timeline)["code"]
    assert code.shape == (timeline.frames(NTSC), 64)
    assert bool(torch.isfinite(code).all())


def test_untrained_module_passes_both_streams_through():
    torch.manual_seed(0)
    module = make().build().eval()
    timeline = Timeline(2 * SR, SR)
    inputs = inputs_for(timeline)
    with torch.no_grad():
        assert torch.equal(module.gate_values(inputs, timeline), torch.full((59, 64), 0.5))
        code = module(inputs, timeline)["code"]
        other_content = module({**inputs, "content": inputs_for(timeline, seed=1)["content"]}, timeline)["code"]
        other_sync = module({**inputs, "sync": inputs_for(timeline, seed=1)["sync"]}, timeline)["code"]
    # Each stream moves the code substantially (the code is layer-normalised: unit variance per frame).
    assert (code - other_content).square().mean() > 0.3
    assert (code - other_sync).square().mean() > 0.3
    torch.testing.assert_close(code.mean(1), torch.zeros(59), atol=1e-5, rtol=0)
    torch.testing.assert_close(code.var(1, unbiased=False), torch.ones(59), atol=1e-3, rtol=0)


def test_gradients_reach_both_streams_and_every_parameter():
    torch.manual_seed(0)
    module = make({"smooth": 4}).build().train()
    timeline = Timeline(SR, SR)
    inputs = {name: tensor.requires_grad_() for name, tensor in inputs_for(timeline).items()}
    target = torch.randn(timeline.frames(NTSC), 64)
    loss = (module(inputs, timeline)["code"] - target).square().mean()
    loss.backward()
    for name in ("content", "sync"):
        assert inputs[name].grad.abs().sum() > 0
    for name in ("content.project.weight", "sync.project.weight"):
        assert module.get_parameter(name).grad.abs().sum() > 0, name
    silent = [name for name, p in module.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    # Only the smoother's score convs wait one step: their output feeds a zero-initialised layer.
    assert all(name.startswith("smoother.score.") for name in silent), silent


def perturb(seq: torch.Tensor, rows: list[int]) -> torch.Tensor:
    # Random, not constant: a constant added to a whole row is exactly what the input LayerNorm removes.
    out = seq.clone()
    out[rows] += 3.0 * torch.randn(len(rows), seq.shape[1], generator=torch.Generator().manual_seed(1))
    return out


@pytest.mark.parametrize("smooth", [0, 4])
def test_frame_t_depends_only_on_its_windows(smooth):
    torch.manual_seed(0)
    module = make({"smooth": smooth, "content_window": 16, "sync_window": 8}).build().eval()
    timeline = Timeline(3 * SR, SR)
    inputs = inputs_for(timeline)
    n_frames, t = timeline.frames(NTSC), 40
    # Frames whose code reaches frame t: t itself, or t-2 .. t+1 when smoothing over 4.
    frames = range(t - smooth // 2, t + (smooth + 1) // 2) if smooth else [t]
    content_rows = window_indices(n_frames, NTSC, CONTENT.fps, inputs["content"].shape[0], 16)
    sync_rows = window_indices(n_frames, NTSC, SYNC.fps, inputs["sync"].shape[0], 8)
    keep_content = {int(i) for f in frames for i in content_rows[f]}
    keep_sync = {int(i) for f in frames for i in sync_rows[f]}
    far = {
        name: perturb(inputs[name], [i for i in range(inputs[name].shape[0]) if i not in keep])
        for name, keep in (("content", keep_content), ("sync", keep_sync))
    }
    with torch.no_grad():
        code = module(inputs, timeline)["code"]
        moved = module(far, timeline)["code"]
        torch.testing.assert_close(moved[t], code[t], atol=1e-6, rtol=0)
        assert not torch.allclose(moved[t - 10], code[t - 10])  # the perturbation is not a no-op
        for name, rows in (("content", keep_content), ("sync", keep_sync)):
            near = {**inputs, name: perturb(inputs[name], [max(rows)])}  # the last row inside does count
            assert not torch.allclose(module(near, timeline)["code"][t], code[t], atol=1e-4)


def test_dropout_is_off_in_eval_and_on_in_train():
    module = make({"dropout": 0.5}).build()
    timeline = Timeline(SR, SR)
    inputs = inputs_for(timeline)
    module.eval()
    with torch.no_grad():
        assert torch.equal(module(inputs, timeline)["code"], module(inputs, timeline)["code"])
        module.train()
        assert not torch.equal(module(inputs, timeline)["code"], module(inputs, timeline)["code"])
