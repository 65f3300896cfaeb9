"""The built-in synthetic subject: a talking head with ground truth for everything.

`generate(out)` writes a dataset folder (`thkit.data.layout`) and `out/video.mp4`: a 2.5D head made
from a public-domain portrait reads an original story in an offline TTS voice, its lips driven by
the aligned phones, its head turning and its eyes blinking at random for the seed. Every array in
the dataset is the ground truth (a perfectly tracked subject), copied under `ground_truth/` with
the expression, head angles, phones and transcript, so that `thkit preprocess` on the mp4 can be
scored against it.

`HELD_OUT_TEXT` is a sentence the story never contains; `speak_held_out()` says it in the same
voice, for showing the subject saying something it never said in training.
"""

from __future__ import annotations

import numpy as np

from thkit.data.synth.subject import MAX_SECONDS, generate
from thkit.data.synth.text import HELD_OUT_TEXT, STORY

__all__ = ["HELD_OUT_TEXT", "MAX_SECONDS", "STORY", "generate", "speak_held_out"]


def speak_held_out(sample_rate: int = 16000, seed: int = 0) -> np.ndarray:
    """[samples] float32 mono: HELD_OUT_TEXT in the subject's voice (the same audio for a seed)."""
    from thkit.data.synth.speech import SAMPLE_RATE, load_voice, synthesize

    audio = synthesize(load_voice(seed), HELD_OUT_TEXT)
    if sample_rate != SAMPLE_RATE:
        import soxr

        audio = soxr.resample(audio, SAMPLE_RATE, sample_rate, quality="HQ").astype(np.float32)
    return audio
