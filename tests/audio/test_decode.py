"""Decoding any audio or video file to mono float32: values, lengths, timing and every error path."""

from __future__ import annotations

import zipfile
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import torch

from tests.audio.conftest import mel_graph
from tests.audio.media import tone, write_av_audio, write_soundfile, write_video
from thkit.audio.decode import SilentAudioWarning, load_audio
from thkit.core.errors import ThkitError
from thkit.core.runner import run_nodes
from thkit.core.timebase import Timeline

RATE = 16000


def spectrum_peaks(audio: np.ndarray, rate: int, count: int) -> list[tuple[float, float]]:
    """The `count` strongest sinusoids as (frequency Hz, amplitude), strongest first (1 Hz bins on 1 s)."""
    window = np.hanning(audio.shape[0])
    magnitude = np.abs(np.fft.rfft(audio * window)) * 2 / window.sum()
    order = np.argsort(magnitude)[::-1]
    peaks: list[tuple[float, float]] = []
    for index in order:
        if all(abs(index - round(f * audio.shape[0] / rate)) > 5 for f, _ in peaks):
            peaks.append((index * rate / audio.shape[0], float(magnitude[index])))
        if len(peaks) == count:
            break
    return peaks


def onset(audio: np.ndarray, rate: int, threshold: float = 0.1) -> float:
    return int(np.argmax(np.abs(audio) > threshold)) / rate


# When gated_tone's sine first exceeds 0.1.
ONSET = 0.25 + np.arcsin(0.1 / 0.5) / (2 * np.pi * 440.0)


def gated_tone(rate: int, channels: int = 2) -> np.ndarray:
    """0.25 s of silence, then 0.75 s of 440 Hz at amplitude 0.5: a known onset and a known pitch."""
    return np.concatenate([np.zeros((rate // 4, channels), np.float32), tone(0.75, rate, 440.0, 0.5, channels)])


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_wav_of_every_sample_format_decodes_to_the_same_tone(tmp_path: Path, subtype: str) -> None:
    path = write_soundfile(tmp_path / f"tone_{subtype}.wav", tone(1.0, 44100, 440.0, 0.5, channels=2), 44100, subtype)
    audio = load_audio(path, RATE)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.shape[0] - RATE) <= 1
    [(frequency, amplitude)] = spectrum_peaks(audio, RATE, 1)
    assert frequency == pytest.approx(440.0, abs=1.0)
    assert amplitude == pytest.approx(0.5, abs=0.01 if subtype == "PCM_U8" else 0.002)


def test_stereo_is_downmixed_to_the_mean_of_its_channels(tmp_path: Path) -> None:
    left, right = tone(1.0, 48000, 440.0, 0.6), tone(1.0, 48000, 1000.0, 0.3)
    path = write_soundfile(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 48000, "FLOAT")
    peaks = dict((round(f), a) for f, a in spectrum_peaks(load_audio(path, RATE), RATE, 2))
    assert peaks.keys() == {440, 1000}
    assert peaks[440] == pytest.approx(0.3, abs=0.003)
    assert peaks[1000] == pytest.approx(0.15, abs=0.003)


def test_native_rate_is_kept_when_requested(tmp_path: Path) -> None:
    signal = tone(0.5, 22050, 300.0, 0.25)
    path = write_soundfile(tmp_path / "native.wav", signal, 22050, "FLOAT")
    np.testing.assert_array_equal(load_audio(path, 22050), signal)


def _soundfile_media(folder: Path, suffix: str) -> Path:
    return write_soundfile(folder / f"gated.{suffix}", gated_tone(44100), 44100)


MEDIA = {
    "flac": lambda folder: _soundfile_media(folder, "flac"),
    "ogg": lambda folder: _soundfile_media(folder, "ogg"),
    "mp3 (libsndfile)": lambda folder: _soundfile_media(folder, "mp3"),
    "mp3 (lame)": lambda folder: write_av_audio(folder / "gated_lame.mp3", gated_tone(44100), 44100, "libmp3lame"),
    "m4a (aac)": lambda folder: write_av_audio(folder / "gated.m4a", gated_tone(44100), 44100, "aac"),
    "mp4 (h264 + aac)": lambda folder: write_video(folder / "gated.mp4", 1.0, audio=gated_tone(44100), rate=44100),
    "mkv (h264 + opus)": lambda folder: write_video(
        folder / "gated.mkv", 1.0, audio=gated_tone(48000), rate=48000, audio_codec="libopus", sample_format="flt"
    ),
    "webm (vp9 + opus)": lambda folder: write_video(
        folder / "gated.webm", 1.0, audio=gated_tone(48000), rate=48000, video_codec="libvpx-vp9", audio_codec="libopus", sample_format="flt"
    ),
}


@pytest.mark.parametrize("kind", list(MEDIA))
def test_every_container_decodes_in_time_and_in_tune(tmp_path: Path, kind: str) -> None:
    """Codec priming and padding are removed: the tone starts at 0.25 s and the clip lasts 1 s."""
    audio = load_audio(MEDIA[kind](tmp_path), RATE)
    assert abs(audio.shape[0] - RATE) <= 1
    assert onset(audio, RATE) == pytest.approx(ONSET, abs=1.5 / RATE if kind == "flac" else 0.001)
    [(frequency, amplitude)] = spectrum_peaks(audio[RATE // 4 + 800 : RATE // 4 + 800 + RATE // 2], RATE, 1)
    assert frequency == pytest.approx(440.0, abs=2.0)
    assert amplitude == pytest.approx(0.5, abs=0.03)


def test_the_audio_stream_of_a_video_is_found_among_other_streams(tmp_path: Path) -> None:
    path = write_video(tmp_path / "talk.mp4", 1.0, audio=gated_tone(44100), rate=44100)
    with av.open(str(path)) as container:
        assert [stream.type for stream in container.streams] == ["video", "audio"]
    assert onset(load_audio(path, RATE), RATE) == pytest.approx(ONSET, abs=0.001)


def test_a_48k_stereo_file_and_its_16k_mono_version_give_the_same_mel_features(tmp_path: Path) -> None:
    def speech_like(rate: int) -> np.ndarray:
        """150 Hz harmonics up to 6 kHz under a 4 Hz syllable envelope, defined in continuous time."""
        t = np.arange(2 * rate) / rate
        voice = sum(np.sin(2 * np.pi * 150 * k * t + k) / k for k in range(1, 41))
        return (0.3 * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)) * voice / 3).astype(np.float32)

    side = tone(2.0, 48000, 2500.0, 0.2)  # opposite in the two channels: the downmix cancels it
    stereo = np.stack([speech_like(48000) + side, speech_like(48000) - side], axis=1)
    high = write_soundfile(tmp_path / "speech_48k_stereo.wav", stereo, 48000, "FLOAT")
    low = write_soundfile(tmp_path / "speech_16k_mono.wav", speech_like(16000), 16000, "FLOAT")

    graph = mel_graph(n_mels=40)
    modules = graph.build_modules(["mel"])
    features = []
    for path in (high, low):
        audio = load_audio(path, RATE)
        outputs = run_nodes(graph, modules, {"audio": torch.from_numpy(audio)}, Timeline(audio.shape[0], RATE))
        features.append(next(iter(outputs.values())).numpy())
    assert features[0].shape == features[1].shape == (200, 40)
    loud = features[1] > features[1].max() - 9  # bands within about 40 dB of the loudest
    assert loud.mean() > 0.5
    difference = np.abs(features[0] - features[1])[loud]  # natural-log mel power: 0.1 is 0.43 dB
    assert difference.mean() < 0.001
    assert difference.max() < 0.1


# -- errors -----------------------------------------------------------------------------------


def assert_user_error(path: Path, *fragments: str) -> ThkitError:
    with pytest.raises(ThkitError) as caught:
        load_audio(path, RATE)
    message = caught.value.format()
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message
    assert caught.value.hint
    return caught.value


def truncated_copy(path: Path, fraction: float = 0.5) -> Path:
    data = path.read_bytes()
    copy = path.with_name(f"truncated_{path.name}")
    copy.write_bytes(data[: int(len(data) * fraction)])
    return copy


def test_missing_file(tmp_path: Path) -> None:
    assert_user_error(tmp_path / "nowhere.wav", "no such file")


def test_folder_instead_of_file(tmp_path: Path) -> None:
    assert_user_error(tmp_path, "is a folder")


def test_video_without_audio_stream(tmp_path: Path) -> None:
    assert_user_error(write_video(tmp_path / "mute.mp4", 1.0), "has no audio stream", "video (h264)")


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    assert_user_error(path, "empty (0 bytes)")


def test_zero_length_wav(tmp_path: Path) -> None:
    path = write_soundfile(tmp_path / "zero.wav", np.zeros((0, 2), np.float32), 44100, "PCM_16")
    assert sf.info(path).frames == 0
    assert_user_error(path, "empty (zero length)")


def test_text_file_named_wav(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("these are meeting notes, not sound\n" * 20)
    assert_user_error(path, "not a readable audio or video file", "Invalid data")


def test_unsupported_container(tmp_path: Path) -> None:
    path = tmp_path / "bundle.zip"
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr("speech.wav", "not really")
    error = assert_user_error(path, "not a readable audio or video file", "format is not supported")
    assert "wav, flac, mp3" in error.hint


def test_truncated_wav(tmp_path: Path) -> None:
    path = truncated_copy(write_soundfile(tmp_path / "long.wav", tone(3.0, 44100), 44100, "PCM_16"))
    assert_user_error(path, "truncated", "promises 3.00 s", "only 1.50 s")


def test_truncated_mp3(tmp_path: Path) -> None:
    path = truncated_copy(write_av_audio(tmp_path / "long.mp3", tone(3.0, 44100), 44100, "libmp3lame"))
    assert_user_error(path, "truncated", "promises 3.00 s")


def test_truncated_mp4(tmp_path: Path) -> None:
    """Cut before its index (moov atom at the end, FFmpeg's default), an mp4 cannot even be opened."""
    path = truncated_copy(write_video(tmp_path / "long.mp4", 3.0, audio=tone(3.0, 44100), rate=44100))
    assert_user_error(path, "not a readable audio or video file", "corrupt or truncated")


def test_corrupt_mp3(tmp_path: Path) -> None:
    path = write_av_audio(tmp_path / "long.mp3", tone(3.0, 44100), 44100, "libmp3lame")
    data = bytearray(path.read_bytes())
    start, stop = len(data) * 2 // 5, len(data) * 3 // 5
    data[start:stop] = np.random.default_rng(0).integers(0, 256, stop - start, dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.mp3"
    damaged.write_bytes(bytes(data))
    assert_user_error(damaged, "corrupt", "decoding failed after")


def test_silent_audio_warns_but_decodes(tmp_path: Path) -> None:
    path = write_soundfile(tmp_path / "silence.wav", np.zeros(RATE, np.float32), RATE, "PCM_16")
    with pytest.warns(SilentAudioWarning, match="silent"):
        audio = load_audio(path, RATE)
    assert audio.shape == (RATE,)
