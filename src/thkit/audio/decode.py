"""Decode any audio or video file to mono float32 at a requested sample rate.

PyAV (FFmpeg) demuxes and decodes every container and codec thkit is given (wav, flac, mp3, ogg,
m4a, mp4, mkv, webm, ...); the samples are converted to float here, channels are averaged, and
soxr does the rate conversion (high quality, exact length). FFmpeg removes codec priming (mp3,
AAC, Opus); the length is then matched to the duration the container declares (see `_fit_length`).
"""

from __future__ import annotations

import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soxr

from thkit.core.errors import ThkitError

SILENCE_PEAK = 1e-4  # below this peak amplitude (about -80 dBFS) a clip is treated as silent
# A stream shorter than its header promises by more than both of these is reported as truncated.
TRUNCATION_SECONDS = 0.1
TRUNCATION_FRACTION = 0.01
# Decoders return a few samples more (AAC's encoder padding) or fewer (FFmpeg's Vorbis decoder drops
# the last block) than a container declares; within this slack the declared length is matched, so the
# audio lasts exactly as long as the video it came with.
CODEC_SLACK_SECONDS = 0.1

READABLE = "wav, flac, mp3, ogg, m4a, mp4, mkv, webm or any other format FFmpeg reads"

# Full-scale value of each integer sample format, so that every format decodes into [-1, 1).
_INTEGER_SCALE = {"u8": 128.0, "s16": 32768.0, "s32": 2147483648.0, "s64": 9223372036854775808.0}


class SilentAudioWarning(UserWarning):
    """The decoded audio is all (near-)silence; features will carry no speech."""


def load_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """[samples] float32 mono at `sample_rate`; ThkitError naming the file for anything unreadable."""
    path = Path(path)
    if path.is_dir():
        raise ThkitError(f"{path}: is a folder, not an audio or video file", hint="give the path of a file inside it")
    if not path.is_file():
        raise ThkitError(f"{path}: no such file", hint="check the path")
    if path.stat().st_size == 0:
        raise ThkitError(f"{path}: the file is empty (0 bytes)", hint="the copy or download that made it failed; make it again")
    audio, native_rate = _decode(path)
    if native_rate != sample_rate:
        audio = soxr.resample(audio, native_rate, sample_rate, quality="HQ").astype(np.float32, copy=False)
    if not np.isfinite(audio).all():
        raise ThkitError(f"{path}: the decoded audio holds NaN or infinite samples", hint="re-export the file as 16-bit wav")
    if np.abs(audio).max() < SILENCE_PEAK:
        warnings.warn(
            f"{path}: the audio is silent (peak below {SILENCE_PEAK:g}); features will carry no speech",
            SilentAudioWarning,
            stacklevel=2,
        )
    return audio


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """The file's best audio stream as [samples] float32 mono at its own rate, and that rate."""
    try:
        container = av.open(str(path), metadata_errors="replace")
    except av.error.FFmpegError as error:
        raise ThkitError(
            f"{path}: not a readable audio or video file: FFmpeg cannot open it ({_reason(error)}); "
            "the file is corrupt or truncated, or its format is not supported",
            hint=f"thkit reads {READABLE}; check that the file is complete, or convert it to wav",
        ) from None
    with container:
        stream = _audio_stream(container, path)
        native_rate = stream.codec_context.sample_rate
        chunks: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                samples = _to_mono(frame)
                if frame.sample_rate != native_rate:  # a stream whose rate changes midway
                    samples = soxr.resample(samples, frame.sample_rate, native_rate, quality="HQ").astype(np.float32)
                chunks.append(samples)
        except av.error.FFmpegError as error:
            decoded = sum(chunk.shape[0] for chunk in chunks) / native_rate
            raise ThkitError(
                f"{path}: the audio is corrupt or truncated: decoding failed after {decoded:.2f} s ({_reason(error)})",
                hint="get an undamaged copy, or re-encode it (ffmpeg -i FILE fixed.wav conceals damaged frames)",
            ) from None
        audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        expected = _declared_wav_samples(path, native_rate) or _declared_samples(stream, native_rate)
        audio = _fit_length(path, audio, expected, native_rate)
    return audio, native_rate


def _audio_stream(container: av.container.InputContainer, path: Path) -> av.audio.stream.AudioStream:
    if not container.streams.audio:
        found = ", ".join(f"{s.type} ({s.codec_context.name if s.codec_context else 'unknown codec'})" for s in container.streams)
        raise ThkitError(
            f"{path}: has no audio stream (it holds: {found or 'no streams at all'})",
            hint="give a file with sound, or the audio recorded with this video",
        )
    stream = container.streams.best("audio") or container.streams.audio[0]
    if stream.codec_context is None:
        raise ThkitError(
            f"{path}: no decoder for its audio codec (stream {stream.index})",
            hint=f"convert the audio to a common codec (wav, flac, mp3, aac, opus); thkit reads {READABLE}",
        )
    if not stream.codec_context.sample_rate:
        raise ThkitError(f"{path}: the audio stream declares no sample rate", hint="re-export the file as wav")
    return stream


def _declared_samples(stream: av.audio.stream.AudioStream, rate: int) -> int | None:
    """Samples the container declares for this stream, when it does."""
    if stream.duration is None or stream.time_base is None:
        return None
    return round(stream.duration * Fraction(stream.time_base) * rate)


def _fit_length(path: Path, audio: np.ndarray, expected: int | None, rate: int) -> np.ndarray:
    """Reject empty and truncated streams; match the declared length when it differs by codec slack."""
    if audio.shape[0] == 0:
        raise ThkitError(f"{path}: the audio stream is empty (zero length)", hint="give a file that holds sound")
    if expected is None or expected <= 0:
        return audio
    difference = audio.shape[0] - expected
    if abs(difference) <= CODEC_SLACK_SECONDS * rate:
        return audio[:expected] if difference > 0 else np.pad(audio, (0, -difference))
    shortfall = -difference
    if shortfall > TRUNCATION_SECONDS * rate and shortfall > TRUNCATION_FRACTION * expected:
        raise ThkitError(
            f"{path}: the file is truncated or damaged: its header promises {expected / rate:.2f} s of audio "
            f"but only {audio.shape[0] / rate:.2f} s could be decoded",
            hint="get a complete copy (an interrupted download or copy?); to use what is there, re-encode it: ffmpeg -i FILE fixed.wav",
        )
    return audio  # far off either way: the declared duration is an estimate (e.g. from the bit rate)


def _declared_wav_samples(path: Path, rate: int) -> int | None:
    """Samples a RIFF/WAVE header declares, even past the end of the file (FFmpeg clips it to the file).

    None for other formats and for streamed wavs, whose data size is left as 0 or 0xFFFFFFFF.
    """
    with path.open("rb") as file:
        header = file.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:] != b"WAVE":
            return None
        byte_rate = None
        while len(chunk := file.read(8)) == 8:
            kind, size = chunk[:4], int.from_bytes(chunk[4:], "little")
            if kind == b"fmt ":
                fmt = file.read(size + (size & 1))
                byte_rate = int.from_bytes(fmt[8:12], "little") if len(fmt) >= 12 else None
            elif kind == b"data":
                if not byte_rate or size in (0, 0xFFFFFFFF):
                    return None
                return size * rate // byte_rate
            else:
                file.seek(size + (size & 1), 1)
    return None


def _to_mono(frame: av.AudioFrame) -> np.ndarray:
    """[samples] float32: the frame's channels averaged, integer formats scaled to [-1, 1)."""
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if not frame.format.is_planar:
        data = data.reshape(-1, channels).T  # packed [1, samples*channels] -> [channels, samples]
    name = frame.format.name.rstrip("p")
    if name in _INTEGER_SCALE:
        offset = 128.0 if name == "u8" else 0.0
        data = (data.astype(np.float64) - offset) / _INTEGER_SCALE[name]
    return data.mean(axis=0, dtype=np.float64).astype(np.float32)


def _reason(error: av.error.FFmpegError) -> str:
    return error.strerror or str(error)
