"""Test media written on the fly: tones in every container and sample format thkit reads."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf


def tone(seconds: float, rate: int, freq: float = 440.0, amp: float = 0.5, channels: int = 1) -> np.ndarray:
    """[samples] (mono) or [samples, channels] float32 sine; every channel carries the same tone."""
    t = np.arange(round(seconds * rate)) / rate
    mono = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return mono if channels == 1 else np.repeat(mono[:, None], channels, axis=1)


def write_soundfile(path: Path, audio: np.ndarray, rate: int, subtype: str | None = None) -> Path:
    sf.write(path, audio, rate, subtype=subtype)
    return path


def write_av_audio(path: Path, audio: np.ndarray, rate: int, codec: str, sample_format: str = "fltp") -> Path:
    """Encode [samples] or [samples, channels] float audio with an FFmpeg audio codec."""
    planar = audio[None, :] if audio.ndim == 1 else np.ascontiguousarray(audio.T)
    layout = "mono" if planar.shape[0] == 1 else "stereo"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        _mux_audio(container, stream, planar, rate, sample_format)
    return path


def write_video(
    path: Path,
    seconds: float,
    *,
    audio: np.ndarray | None = None,
    rate: int = 44100,
    video_codec: str = "libx264",
    audio_codec: str = "aac",
    sample_format: str = "fltp",
    fps: int = 25,
    size: int = 64,
) -> Path:
    """A moving-gradient video, with `audio` ([samples] or [samples, channels]) muxed in if given."""
    with av.open(str(path), "w") as container:
        video = container.add_stream(video_codec, rate=fps)
        video.width = video.height = size
        video.pix_fmt = "yuv420p"
        sound = None
        if audio is not None:
            planar = audio[None, :] if audio.ndim == 1 else np.ascontiguousarray(audio.T)
            sound = container.add_stream(audio_codec, rate=rate, layout="mono" if planar.shape[0] == 1 else "stereo")
        ramp = np.linspace(0, 255, size, dtype=np.float32)
        for index in range(round(seconds * fps)):
            image = ((ramp[None, :, None] + 8 * index) % 256).astype(np.uint8).repeat(size, 0).repeat(3, 2)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if sound is not None:
            _mux_audio(container, sound, planar, rate, sample_format)
    return path


def _mux_audio(container, stream, planar: np.ndarray, rate: int, sample_format: str) -> None:
    block = 1024
    for start in range(0, planar.shape[1], block):
        chunk = planar[:, start:start + block]
        if sample_format.endswith("p"):
            data = np.ascontiguousarray(chunk)
        else:
            data = np.ascontiguousarray(chunk.T).reshape(1, -1)
        if sample_format.startswith("s16"):
            data = np.round(data * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(data, format=sample_format, layout="mono" if planar.shape[0] == 1 else "stereo")
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
