"""`phones`: which phone is being spoken, as a class distribution per 10 ms row.

Phones are what a mouth shows (visemes are groups of them), so a talking head can use them as a
compact, speaker-independent audio feature, with no neural weights to download: pocketsphinx 5
ships its US English acoustic model, CMU dictionary and phone language model inside its wheel.

- With a transcript (`text:`, else `timeline.text`, which TTS input and sidecar transcripts fill)
  the words are force-aligned to the audio and their dictionary pronunciations give the phones.
  Words missing from the dictionary (or audio that does not fit the words) fall back to
  recognition with a warning.
- Without one, pocketsphinx's phone-loop recogniser (its phone trigram language model) decodes the
  audio directly: noisier, but it needs nothing.

`mode` forces one or the other. Classes are the 39 CMU phones plus SIL (`PHONES`; pocketsphinx's
noise units +NSN+ and +SPN+ count as SIL), so the output is `Seq(40, 100)`. Each row is one-hot,
or with `smoothing_ms > 0` a Gaussian blur of the one-hot rows along time (rows still sum to 1),
which lets a model see the coming phone as lips anticipate it.

pocketsphinx analyses 25.6 ms windows every 10 ms; the audio is padded so that window k is centred
on row k. It needs 16 kHz audio.

Speed, on one core of a 2-core AMD EPYC, for 10 minutes of piper speech: alignment about 55x real
time (one pass of a phone-level grammar, in 8 s windows), recognition about 39x, and about 70x
with `workers: 2` on two free cores. `_phones_module` says how, and what each choice does to the
rows.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from thkit.core import Accepts, Audio, Component, Params, Seq

if TYPE_CHECKING:
    from torch import nn

SAMPLE_RATE = 16000  # the rate of pocketsphinx's bundled en-US acoustic model
FPS = Fraction(100)  # its frame rate
SILENCE = "SIL"
PHONES = (
    SILENCE,
    *"AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y Z ZH".split(),
)


class PhonesParams(Params):
    text: str | None = Field(None, description="transcript to force-align (default: the timeline's text, if any)")
    mode: Literal["auto", "align", "recognize"] = Field(
        "auto",
        description="auto: align when a transcript is known, else recognise; align: require a transcript; "
        "recognize: ignore any transcript",
    )
    smoothing_ms: float = Field(
        0.0, ge=0, description="std of a Gaussian blur of the one-hot rows along time, ms (0: one-hot)"
    )
    workers: int = Field(
        2, ge=1, description="processes recognising pieces of long audio (over 30 s) in parallel (1: all in this one)"
    )


class PhonesEncoder(Component):
    """Phone classes from pocketsphinx (forced alignment or recognition): 16 kHz audio -> Seq(40, 100)."""

    kind = "encoder"
    Params = PhonesParams
    version = "3"  # 2: forced alignment in one phone-level pass; 3: faster, closer recognition settings
    inputs = {"audio": Accepts(Audio, sample_rate=SAMPLE_RATE, doc="mono speech at 16 kHz")}

    def outputs(self) -> dict[str, Seq]:
        return {"features": Seq(len(PHONES), FPS)}

    def build(self) -> nn.Module:
        from thkit.plugins.encoders._phones_module import PhonesModule

        return PhonesModule(self)
