"""The mp4 writer: H.264 + AAC, every frame at i / fps, the audio from its first sample, any rate."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from thkit.render.video import AudioVideoWriter, read_video


def write(path, n_frames: int, fps: Fraction, audio: np.ndarray, sample_rate: int, size=(48, 64)) -> None:
    height, width = size
    with AudioVideoWriter(path, width=width, height=height, fps=fps, audio=audio, sample_rate=sample_rate) as writer:
        for index in range(n_frames):
            writer.add(np.full((height, width, 3), (index * 7) % 256, np.uint8))


@pytest.mark.parametrize(("fps", "sample_rate"), [(Fraction(25), 16000), (Fraction(30000, 1001), 48000)])
def test_frames_and_audio_line_up(tmp_path, fps, sample_rate):
    seconds = 2.3
    audio = (0.5 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * sample_rate)) / sample_rate)).astype(np.float32)
    n_frames = len(audio) * fps.numerator // (sample_rate * fps.denominator)
    write(tmp_path / "clip.mp4", n_frames, fps, audio, sample_rate)
    assert not list(tmp_path.glob(".*partial*"))
    frames, rate = read_video(tmp_path / "clip.mp4")
    assert rate == fps and frames.shape == (n_frames, 48, 64, 3)
    assert abs(int(frames[5].mean()) - 35) <= 2  # frame 5 is frame 5
    with av.open(str(tmp_path / "clip.mp4")) as container:
        video, sound = container.streams.video[0], container.streams.audio[0]
        times = [float(frame.pts * frame.time_base) for frame in container.decode(video)]
        assert sound.rate == sample_rate
    assert times == pytest.approx([i / fps for i in range(n_frames)], abs=1e-3)
    with av.open(str(tmp_path / "clip.mp4")) as container:
        decoded = np.concatenate([frame.to_ndarray().reshape(-1) for frame in container.decode(audio=0)])
    assert len(decoded) >= len(audio)
    decoded = decoded[: len(audio)]
    assert np.corrcoef(decoded[2000:-2000], audio[2000:-2000])[0, 1] > 0.99  # in phase: no delay left
    assert 0 <= len(audio) / sample_rate - n_frames / fps < 1 / fps


def test_odd_sizes_are_padded_and_wrong_frames_refused(tmp_path):
    audio = np.zeros(16000, np.float32)
    write(tmp_path / "odd.mp4", 3, Fraction(25), audio, 16000, size=(33, 35))
    frames, _ = read_video(tmp_path / "odd.mp4")
    assert frames.shape == (3, 34, 36, 3)
    with AudioVideoWriter(tmp_path / "bad.mp4", width=8, height=8, fps=Fraction(25), audio=audio, sample_rate=16000) as writer:
        with pytest.raises(ValueError, match=r"uint8 \[8, 8, 3\]"):
            writer.add(np.zeros((8, 8, 3), np.float32))
        writer.add(np.zeros((8, 8, 3), np.uint8))
    assert (tmp_path / "bad.mp4").is_file()


def test_an_interrupted_write_leaves_nothing(tmp_path):
    audio = np.zeros(16000, np.float32)
    with pytest.raises(KeyboardInterrupt):
        with AudioVideoWriter(tmp_path / "cut.mp4", width=16, height=16, fps=Fraction(25), audio=audio, sample_rate=16000) as writer:
            writer.add(np.zeros((16, 16, 3), np.uint8))
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
