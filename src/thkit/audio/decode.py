"""Decode any audio or video file to mono float32 at a requested sample rate.

PyAV (FFmpeg) reads every container and codec; its resampler only converts the sample format to
float planar at the native rate, and soxr does the rate conversion (high quality, exact length).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import av
import numpy as np
import soxr

from thkit.core.errors import ThkitError

SILENCE_PEAK = 1e-4  # below this peak amplitude (about -80 dBFS) a clip is treated as silent


class SilentAudioWarning(UserWarning):
    """The decoded audio is all (near-)silence; features will carry no speech."""


def load_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """[samples] float32 mono at `sample_rate`; ThkitError naming the file for anything unreadable."""
    path = Path(path)
    if not path.is_file():
        raise ThkitError(f"{path}: no such file", hint="check the path")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as error:
        raise ThkitError(f"{path}: not a readable audio or video file ({error})", hint="convert it to wav, flac, mp3 or mp4") from None
    with container:
        if not container.streams.audio:
            raise ThkitError(f"{path}: has no audio stream", hint="give a file with sound, or extract it first")
        stream = container.streams.audio[0]
        native_rate = stream.rate or stream.codec_context.sample_rate
        to_float = av.AudioResampler(format="fltp", layout=stream.layout.name, rate=native_rate)
        chunks = []
        try:
            for frame in container.decode(stream):
                for converted in to_float.resample(frame):
                    chunks.append(converted.to_ndarray().mean(axis=0))  # [channels, n] -> [n]
            for converted in to_float.resample(None):
                chunks.append(converted.to_ndarray().mean(axis=0))
        except av.error.FFmpegError as error:
            raise ThkitError(f"{path}: corrupt or truncated audio ({error})", hint="re-export the file") from None
    if not chunks or sum(chunk.shape[0] for chunk in chunks) == 0:
        raise ThkitError(f"{path}: the audio stream is empty (zero length)", hint="give a file with sound")
    audio = np.concatenate(chunks).astype(np.float32)
    if native_rate != sample_rate:
        audio = soxr.resample(audio, native_rate, sample_rate, quality="HQ").astype(np.float32)
    if not np.isfinite(audio).all():
        raise ThkitError(f"{path}: decoded audio holds NaN or infinite samples", hint="re-export the file")
    if np.abs(audio).max() < SILENCE_PEAK:
        warnings.warn(f"{path}: the audio is silent", SilentAudioWarning, stacklevel=2)
    return audio
