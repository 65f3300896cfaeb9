"""The `sync` encoder: contract, shapes, loss and offset scan, and sync recovery on a toy subject."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch

from thkit.core import Audio, GraphContext, PortMismatch, Seq, Timeline
from thkit.plugins.encoders._sync_train import best_offset, fit_sync, sync_loss
from thkit.plugins.encoders.sync import SyncEncoder
from thkit.testing import check_component

SR, FPS = 16000, 25
H, W = 16, 32  # small mouth crops keep the toy fit fast on CPU
SMALL = {"dim": 32, "n_mels": 40, "mouth_height": H, "mouth_width": W}


def make(params: dict, sample_rate: int = SR, fps: Fraction = Fraction(FPS)) -> SyncEncoder:
    return SyncEncoder(SyncEncoder.Params(**params), {"audio": Audio(sample_rate)}, GraphContext(video_fps=fps))


def test_contract_default_and_small():
    assert "outputs match their ports exactly on two clip lengths, finite and deterministic" in check_component(SyncEncoder)
    check_component(SyncEncoder, params=SMALL, check_import=False)


def test_ports_and_rates():
    encoder = make({})
    assert encoder.outputs() == {"features": Seq(512, Fraction(25))}
    assert encoder.hop == 200 and encoder.mel_fps == 80  # Wav2Lip: 12.5 ms hop, 16 frames = 0.2 s
    ntsc = make({"dim": 64}, sample_rate=44100, fps=Fraction(30000, 1001))
    assert ntsc.outputs()["features"] == Seq(64, Fraction(30000, 1001))
    assert ntsc.hop == 551 and ntsc.mel_fps == Fraction(44100, 551)  # rounded hop, exact rate


def test_window_shorter_than_a_frame_is_a_port_mismatch():
    with pytest.raises(PortMismatch) as caught:
        make({"window": 3}).outputs()  # 3 frames at 80 Hz = 37.5 ms < 40 ms
    assert caught.value.input_name is None
    assert "window >= 4" in caught.value.message
    make({"window": 4}).outputs()


def test_output_rows_follow_the_timeline_exactly():
    module = make(SMALL, fps=Fraction(30000, 1001)).build().eval()
    for n_samples in (0, 500, 16000, 23_456):
        timeline = Timeline(n_samples, SR)
        with torch.no_grad():
            features = module({"audio": torch.randn(n_samples)}, timeline)["features"]
        assert features.shape == (timeline.frames(Fraction(30000, 1001)), 32)


def test_mouth_encoder_shapes_and_checks():
    visual = make(SMALL).build_visual().eval()
    with torch.no_grad():
        assert visual(torch.rand(7, H, W)).shape == (7, 32)
        assert visual(torch.rand(0, H, W)).shape == (0, 32)
    assert visual.stack_index(4).tolist() == [[0, 0, 0, 1, 2], [0, 0, 1, 2, 3], [0, 1, 2, 3, 3], [1, 2, 3, 3, 3]]
    with pytest.raises(ValueError, match=r"\[frames, 16, 32\]"):
        visual(torch.rand(7, W, H))


def test_sync_loss_values():
    audio = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    visual = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])  # cosines: rows are unit-free
    loss = sync_loss(audio, visual, torch.tensor([0, 1]), temperature=0.5)
    # Anchor 0: logits (1, 0, 1/sqrt2) / 0.5, positive first; anchor 1 mirrors it, so the mean is the same.
    logits = torch.tensor([2.0, 0.0, 2 / math.sqrt(2)])
    expected = -torch.log_softmax(logits, 0)[0]
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_best_offset_on_known_embeddings():
    base = torch.randn(40, 6, generator=torch.Generator().manual_seed(0))
    shifted = torch.roll(base, 3, dims=0)  # visual[t + 3] == audio[t]: the video lags by 3
    offset, scores = best_offset(base, shifted, max_shift=4)
    assert offset == 3
    assert scores.shape == (9,)
    assert scores[3 + 4].item() == pytest.approx(1.0, abs=1e-6)
    assert best_offset(base, base, 4)[0] == 0
    with pytest.raises(ValueError, match="too few"):
        best_offset(base[:8], base[:8], 4)


def toy_clip(seconds: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Speech-like audio whose loudness envelope drives a rendered mouth ellipse's opening.

    Syllables are Hann-shaped bursts (80-300 ms, random loudness, random pauses) of a gliding
    harmonic tone plus noise; each video frame's mouth opening is the mean envelope over that
    frame's exact audio samples, drawn as a dark ellipse whose height follows it.
    """
    g = torch.Generator().manual_seed(seed)
    n = seconds * SR
    envelope = torch.zeros(n)
    t = 0
    while t < n:
        length = int((0.08 + 0.22 * torch.rand(1, generator=g).item()) * SR)
        loudness = 0.15 + 0.85 * torch.rand(1, generator=g).item()
        stop = min(n, t + length)
        envelope[t:stop] = (torch.hann_window(length, periodic=False) * loudness)[: stop - t]
        t = stop + int(0.25 * torch.rand(1, generator=g).item() * SR)
    f0 = 120 + 30 * torch.sin(2 * math.pi * 0.3 * torch.arange(n) / SR)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / SR
    carrier = sum(torch.sin(k * phase) / k for k in range(1, 8)) + 0.3 * torch.randn(n, generator=g)
    audio = 0.3 * envelope * carrier
    timeline = Timeline(n, SR)
    opening = torch.stack([envelope[slice(*timeline.sample_span(i, FPS))].mean() for i in range(timeline.frames(FPS))])
    y = torch.arange(H, dtype=torch.float32)[:, None]
    x = torch.arange(W, dtype=torch.float32)[None, :]
    half_height = 0.5 + 0.6 * H * opening[:, None, None]
    inside = torch.sigmoid(6 * (1 - ((x - W / 2) / (W / 3)) ** 2 - ((y - H / 2) / half_height) ** 2))
    mouth = 0.8 - 0.6 * inside + 0.03 * torch.randn(opening.shape[0], H, W, generator=g)
    return audio, mouth.clamp(0, 1)


def delay(frames: torch.Tensor, shift: int) -> torch.Tensor:
    """Frames delayed by `shift` (advanced when negative), holding the end frame at the edge."""
    if shift > 0:
        return torch.cat([frames[:1].expand(shift, -1, -1), frames[:-shift]])
    if shift < 0:
        return torch.cat([frames[-shift:], frames[-1:].expand(-shift, -1, -1)])
    return frames


def test_fit_sync_recovers_injected_offsets_on_a_held_out_clip():
    torch.manual_seed(0)
    encoder = make(SMALL)
    audio_module, visual_module = encoder.build(), encoder.build_visual()
    audio, mouth = toy_clip(40, seed=1)
    losses = fit_sync(audio_module, visual_module, audio, mouth, steps=50, temperature=encoder.params.temperature)
    assert len(losses) == 50
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:5]) / 5

    test_audio, test_mouth = toy_clip(12, seed=2)
    audio_module.eval()
    visual_module.eval()
    with torch.no_grad():
        audio_emb = audio_module({"audio": test_audio}, Timeline(test_audio.shape[0], SR))["features"]
        for shift in (0, 2, -2):
            offset, scores = best_offset(audio_emb, visual_module(delay(test_mouth, shift)), max_shift=5)
            assert offset == shift
            best, others = scores[shift + 5], torch.cat([scores[: shift + 5], scores[shift + 6 :]])
            assert best > others.max() + 0.1  # a clear peak, not a tie broken by luck


def test_fit_sync_takes_mel_and_several_clips_and_restores_modes():
    torch.manual_seed(0)
    encoder = make({**SMALL, "dim": 16})
    audio_module, visual_module = encoder.build(), encoder.build_visual()
    audio_module.eval()
    (a1, m1), (a2, m2) = toy_clip(2, seed=3), toy_clip(3, seed=4)
    losses = fit_sync(audio_module, visual_module, [audio_module.log_mel(a1), a2], [m1, m2], steps=2, segments=2, segment=8)
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    assert not audio_module.training and visual_module.training
    with pytest.raises(ValueError, match="covers 12 video frames"):
        fit_sync(audio_module, visual_module, a1[: SR // 2], m1, steps=1)
    with pytest.raises(ValueError, match="shorter than"):
        fit_sync(audio_module, visual_module, a1, m1, steps=1, segment=100)
