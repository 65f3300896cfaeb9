"""`formant`: F1-F3, their bandwidths, a voicing mask and intensity, at 100 frames per second.

The decoupled Gaussian-landmark NeRF conditions its audio-to-landmark Transformer on formants as
well as deep features: F1 tracks jaw opening, F2 tongue front/back and lip rounding, which is what
a mouth does. Formants are Praat's Burg analysis (praat-parselmouth), voicing is Praat's pitch
tracker, intensity is the RMS level of the same 25 ms window.

Channels of `Seq(8, 100)`, each of row i measured at the row's centre time (i + 0.5) / 100 s:

  0-2  F1, F2, F3 / 5000 Hz
  3-5  B1, B2, B3 / 2000 Hz, clipped to [0, 1] (Burg bandwidths of weak formants run to many kHz)
  6    voiced mask: 1 where the row is voiced and Burg found F1-F3, else 0
  7    intensity: (RMS level in dBFS + 100) / 100, clipped to [0, 1] (digital silence is 0)

Formants are only meaningful in voiced speech, so channels 0-5 of unvoiced rows (silence,
fricatives, stops) are linearly interpolated between the nearest voiced rows and held at the
clip's ends; a clip with no voiced row gets the neutral vowel (uniform tube): F = 500, 1500,
2500 Hz, B = 100 Hz. The mask tells a model which rows were measured.

The decoupled paper's public code divides formants by sr/2 (8000 Hz at 16 kHz) from an LPC
analysis; 5000 Hz keeps the usual F1-F3 range (200-3500 Hz) in about [0, 0.7]. A learned linear
layer downstream absorbs any constant scale.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

from pydantic import Field

from thkit.core import Accepts, Audio, Component, Params, PortMismatch, Seq

if TYPE_CHECKING:
    from torch import nn

FPS = Fraction(100)
CHANNELS = ("F1", "F2", "F3", "B1", "B2", "B3", "voiced", "intensity")
FORMANT_SCALE_HZ = 5000.0
BANDWIDTH_SCALE_HZ = 2000.0
NEUTRAL_FORMANTS_HZ = (500.0, 1500.0, 2500.0)
NEUTRAL_BANDWIDTH_HZ = 100.0
INTENSITY_FLOOR_DB = -100.0


class FormantParams(Params):
    max_formant: float = Field(
        5500.0, gt=0, description="Burg ceiling, Hz: about 5000 for male voices, 5500 for female, 8000 for children"
    )
    window_ms: float = Field(25.0, gt=0, description="Burg effective window (Praat's physical window is twice this)")
    pitch_floor: float = Field(75.0, gt=0, description="lowest F0 counted as voiced, Hz")
    pitch_ceiling: float = Field(600.0, gt=0, description="highest F0 counted as voiced, Hz")


class FormantEncoder(Component):
    """Formants, bandwidths, voicing and intensity: [samples] -> Seq(8, 100)."""

    kind = "encoder"
    Params = FormantParams
    inputs = {"audio": Accepts(Audio, doc="mono speech")}

    def outputs(self) -> dict[str, Seq]:
        params = self.params
        sample_rate = self.input_ports["audio"].sample_rate
        if params.max_formant > sample_rate / 2:
            raise PortMismatch("audio", f"max_formant={params.max_formant} Hz is above the Nyquist frequency of {sample_rate} Hz audio")
        if params.pitch_floor >= params.pitch_ceiling:
            raise PortMismatch(None, f"pitch_floor={params.pitch_floor} must be below pitch_ceiling={params.pitch_ceiling}")
        return {"features": Seq(len(CHANNELS), FPS)}

    def build(self) -> nn.Module:
        from thkit.plugins.encoders._formant_module import FormantModule

        return FormantModule(self)
