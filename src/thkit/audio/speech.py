"""What every `--audio FILE | --text "..."` command starts from: a waveform and its timeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from thkit.audio.decode import load_audio
from thkit.core.timebase import Timeline


def transcript_of(audio_path: str | Path) -> str | None:
    """The sidecar transcript `<stem>.txt` beside an audio file, when there is one and it is not empty."""
    sidecar = Path(audio_path).with_suffix(".txt")
    if not sidecar.is_file():
        return None
    text = sidecar.read_text(encoding="utf-8", errors="replace").strip()
    return text or None


def load_speech(
    audio_path: str | Path | None = None, *, text: str | None = None, sample_rate: int = 16000
) -> tuple[np.ndarray, Timeline]:
    """[samples] float32 mono at `sample_rate` and its Timeline, from a file or spoken from `text`.

    Give exactly one of `audio_path` and `text`. A file's timeline carries its path as `source` and
    its sidecar transcript as `text`; synthesised speech carries the text it says.
    """
    if (audio_path is None) == (text is None):
        raise ValueError("give exactly one of audio_path and text")
    if text is not None:
        from thkit.audio.tts import synthesize

        audio = synthesize(text, sample_rate)
        return audio, Timeline(audio.shape[0], sample_rate, source=None, text=text.strip())
    audio = load_audio(audio_path, sample_rate)
    return audio, Timeline(audio.shape[0], sample_rate, source=str(audio_path), text=transcript_of(audio_path))
