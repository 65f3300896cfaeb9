"""The lip-sync measures: the audio envelope, correlation, the offset scan, and a run's sync encoder."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from thkit.eval import lipsync
from thkit.eval.align import dataset_clip
from thkit.eval.lipsync import OffsetScan

RATE = 16000


def test_envelope_is_the_loudness_under_each_frame():
    """A 400 Hz sine holds whole periods in each 640-sample frame (25 fps): RMS = amplitude / sqrt(2)."""
    amplitudes = np.array([0.5, 0.1, 0.5, 0.02])
    time = np.arange(640) / RATE
    audio = np.concatenate([amplitude * np.sin(2 * np.pi * 400 * time) for amplitude in amplitudes]).astype(np.float32)
    loudness = lipsync.envelope(audio, RATE, Fraction(25), 5)
    np.testing.assert_allclose(loudness[:4], 20 * np.log10(amplitudes / np.sqrt(2)), atol=1e-3)
    assert np.isnan(loudness[4])  # past the audio


def test_envelope_floors_silence_and_keeps_exact_ntsc_spans():
    fps = Fraction(30000, 1001)
    audio = np.zeros(RATE, dtype=np.float32)
    audio[: RATE // 2] = 0.3  # loud half a second, then digital silence
    loudness = lipsync.envelope(audio, RATE, fps, 29)  # 29 whole frames at 29.97 fps in 1 s
    assert np.isfinite(loudness).all()
    assert loudness.max() == pytest.approx(20 * np.log10(0.3), abs=1e-4)
    assert loudness.min() == pytest.approx(loudness.max() - lipsync.ENVELOPE_RANGE_DB)  # floored, not -inf


@pytest.mark.parametrize("shift", [-4, 0, 3, 7])
def test_the_scan_finds_a_planted_offset_exactly(shift):
    """The video signal shows at frame t + shift what the audio signal has at t: best offset = shift."""
    audio = np.random.default_rng(1).normal(size=120)
    video = np.roll(audio, shift)
    scan = lipsync.scan_offsets(audio, video, 10)
    assert scan is not None and scan.best == shift and scan.best_score == pytest.approx(1)
    assert scan.offsets.tolist() == list(range(-10, 11)) and scan.scores.shape == (21,)


def test_the_scan_shrinks_for_short_clips_and_skips_missing_frames():
    signal = np.random.default_rng(2).normal(size=9)
    scan = lipsync.scan_offsets(signal, signal, 15)
    assert scan is not None and scan.max_offset == 3 and scan.best == 0  # (9 - 3) // 2: three anchors remain
    assert lipsync.scan_offsets(signal[:2], signal[:2], 15) is None
    gappy = signal.copy()
    gappy[4] = np.nan  # a frame without a face
    assert lipsync.correlation(signal, gappy) == pytest.approx(1)
    assert lipsync.correlation(signal, np.ones(9)) is None  # constant: undefined, not 0
    assert OffsetScan(1, np.full(3, np.nan)).best is None


def test_run_sync_encoder_cosine_per_frame_and_over_offsets(tiny_run):
    """The run's sync encoder and the mouth encoder trained with it, on the run's own frames and audio.

    The subject is 64 px, too small for dlib, so the dataset's own landmarks place the mouth crops."""
    import torch
    from safetensors.torch import load_file

    from thkit.render.pipeline import load_run

    loaded = load_run(tiny_run, device="cpu")
    encoder = lipsync.find_sync_encoder(loaded)
    assert not isinstance(encoder, str), encoder
    assert encoder.node == "sync" and encoder.mouth_height == 16 and encoder.mouth_width == 32  # the demo's fast sizes
    clip = dataset_clip(loaded.dataset, range(len(loaded.dataset)))
    marks = np.asarray(loaded.dataset.array("landmarks2d"), dtype=np.float64)
    measure = lipsync.sync_measure(encoder, clip.frames, marks, clip.fps, clip.audio, clip.sample_rate, 5)
    assert not isinstance(measure, str), measure
    n_frames = clip.frames.shape[0]
    assert measure.cosine.shape == (n_frames,) and np.isfinite(measure.cosine).all() and (np.abs(measure.cosine) <= 1 + 1e-6).all()
    assert measure.scan is not None and measure.scan.scores.shape == (11,)
    # offset 0 of the scan is the mean cosine over its anchor frames
    assert measure.scan.scores[5] == pytest.approx(measure.cosine[5 : n_frames - 5].mean(), abs=1e-5)
    # the mouth encoder holds the weights the run saved for it
    saved = load_file(tiny_run / "state" / "tensors.safetensors")
    for key, value in encoder.visual.state_dict().items():
        assert torch.equal(value.cpu(), saved[f"aux.sync.visual.{key}"]), key
    wrong_rate = lipsync.sync_measure(encoder, clip.frames, marks, Fraction(30), clip.audio, clip.sample_rate, 5)
    assert wrong_rate == "skipped: the sync encoder works at 25 fps, the video is at 30 fps"
    no_face = lipsync.sync_measure(encoder, clip.frames, np.full_like(marks, np.nan), clip.fps, clip.audio, clip.sample_rate, 5)
    assert no_face == "skipped: no face found in any frame"


def test_a_run_without_sync_encoder_says_so(tiny_run):
    from types import SimpleNamespace

    from thkit.render.pipeline import load_run

    loaded = load_run(tiny_run, device="cpu")
    without = SimpleNamespace(root=loaded.root, graph=SimpleNamespace(nodes={name: node for name, node in loaded.graph.nodes.items() if name != "sync"}))
    assert lipsync.find_sync_encoder(without) == f"skipped: the spec of {loaded.root} has no sync encoder node"  # type: ignore[arg-type]
