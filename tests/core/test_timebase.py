from fractions import Fraction

import numpy as np
import pytest
import torch

from thkit.core.align import pool_to_frames, windows_to_frames
from thkit.core.timebase import Timeline, as_rate, format_rate, frame_count, frame_spans, window_indices

NTSC = Fraction(30000, 1001)


@pytest.mark.parametrize(
    ("given", "expected"),
    [(25, Fraction(25)), ("30000/1001", NTSC), (29.97, NTSC), (23.976, Fraction(24000, 1001)), (12.5, Fraction(25, 2)), (Fraction(50), Fraction(50))],
)
def test_as_rate(given, expected):
    assert as_rate(given) == expected


@pytest.mark.parametrize("bad", [0, -25, "fast", "1/0", True])
def test_as_rate_rejects(bad):
    with pytest.raises(ValueError):
        as_rate(bad)


def test_format_rate():
    assert format_rate(Fraction(25)) == "25"
    assert format_rate(NTSC) == "30000/1001"


@pytest.mark.parametrize("fps", [Fraction(30), NTSC, Fraction(25)])
def test_one_hour_of_48k_audio_stays_within_half_a_frame(fps):
    """The drift the peers' users report: float frame times slip over long clips; exact ones do not."""
    sample_rate = 48000
    n_samples = 3600 * sample_rate
    timeline = Timeline(n_samples, sample_rate)
    n_frames = timeline.frames(fps)
    true_end = Fraction(n_samples, sample_rate)
    video_end = Fraction(n_frames) / fps
    assert 0 <= true_end - video_end < Fraction(1, 2) / fps
    # The last frame's audio span ends within one frame of the audio's end, and spans tile exactly.
    start, stop = timeline.sample_span(n_frames - 1, fps)
    assert n_samples - stop < sample_rate / fps
    assert timeline.sample_span(n_frames - 2, fps)[1] == start
    # A 50 Hz feature stream of the same audio maps its last video frame onto its last rows.
    n_features = timeline.frames(50)
    spans = frame_spans(n_frames, fps, 50, n_features)
    assert spans[1][-1] >= n_features - 1
    centre = window_indices(n_frames, fps, 50, n_features, window=1)[-1, 0]
    true_centre_time = (Fraction(n_frames) - Fraction(1, 2)) / fps
    assert abs(Fraction(int(centre)) / 50 - true_centre_time) <= Fraction(1, 50)


def test_frame_count_nests_like_integer_division():
    for n in range(0, 5000, 37):
        assert frame_count(n, 16000, 25) == n // 640
        assert frame_count(frame_count(n, 16000, 100), 100, 25) == frame_count(n, 16000, 25)


def test_frame_spans_cover_input_without_gaps_when_downsampling():
    start, stop = frame_spans(25, 25, 100, 100)
    assert start.tolist() == list(range(0, 100, 4))
    assert stop.tolist() == list(range(4, 101, 4))
    start, stop = frame_spans(3, NTSC, 100, 11)
    # 100 Hz rows per NTSC frame = 3.336..: [0, 4), [3, 7), [6, 11)
    assert start.tolist() == [0, 3, 6] and stop.tolist() == [4, 7, 11]


def test_window_indices_centre_and_clamp():
    index = window_indices(4, 25, 50, 8, window=4)
    # Frame j centre is at (j + 1/2)/25 s = row 2j+1 at 50 Hz; window starts two rows earlier.
    assert index.tolist() == [[0, 0, 1, 2], [1, 2, 3, 4], [3, 4, 5, 6], [5, 6, 7, 7]]


def test_pool_to_frames_means_and_repeats():
    seq = torch.arange(8, dtype=torch.float32).unsqueeze(1)  # [8, 1] at 100 Hz
    pooled = pool_to_frames(seq, 100, 50, 4)
    assert pooled.squeeze(1).tolist() == [0.5, 2.5, 4.5, 6.5]
    upsampled = pool_to_frames(seq[:2], 25, 100, 8)
    assert upsampled.squeeze(1).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_pool_to_frames_is_differentiable():
    seq = torch.randn(10, 3, requires_grad=True)
    pool_to_frames(seq, 100, 25, 2).sum().backward()
    assert seq.grad is not None and torch.allclose(seq.grad[:8], torch.full((8, 3), 0.25))


def test_windows_to_frames_shape_and_values():
    seq = torch.arange(20, dtype=torch.float32).unsqueeze(1)
    windows = windows_to_frames(seq, 50, 25, 10, 16)
    assert windows.shape == (10, 16, 1)
    assert windows[5, :, 0].tolist() == list(range(3, 19))


def test_align_rejects_empty_input():
    with pytest.raises(ValueError):
        frame_spans(3, 25, 100, 0)
    with pytest.raises(ValueError):
        window_indices(3, 25, 100, 0, 4)
    assert np.array_equal(frame_spans(0, 25, 100, 5)[0], np.zeros(0))
    # A clip too short for any output row needs no input rows at all.
    assert frame_spans(0, 25, 100, 0)[0].shape == (0,)
    assert window_indices(0, 25, 50, 0, 16).shape == (0, 16)
