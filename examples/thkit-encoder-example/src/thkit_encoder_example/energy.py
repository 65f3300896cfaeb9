"""`energy-zcr`: per-frame log energy, zero-crossing rate and spectral centroid of the audio.

Three cheap, weight-free descriptors of loudness and brightness. Row i covers exactly the samples
[i*hop, (i+1)*hop), which is thkit's convention (row i of a sequence at rate r covers the time
[i/r, (i+1)/r)): no row looks outside its own time span, so the rows line up with every other
stream of the graph over any clip length.

This file is what thkit imports to list and validate the component, so it must not import torch;
the network lives in `_energy_module.py`, which `build()` imports.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

from pydantic import Field

from thkit.core import Accepts, Audio, Component, Params, PortMismatch, Seq

if TYPE_CHECKING:
    from torch import nn


class EnergyZcrParams(Params):
    hop_ms: float = Field(10.0, gt=0, description="frame length and step; the output rate is 1000/hop_ms frames per second")
    centroid: bool = Field(True, description="add the spectral centroid as a third column")
    normalise: bool = Field(False, description="standardise each column over the clip (zero mean, unit variance)")


class EnergyZcrEncoder(Component):
    """Log energy (dB), zero-crossing rate and spectral centroid per frame: [samples] -> Seq(3, 1000/hop_ms).

    Columns: 0 is the mean power 10*log10(mean(x^2) + 1e-10) in dB (digital silence gives -100);
    1 is the zero-crossing rate, the fraction of adjacent sample pairs whose sign differs; 2 (when
    `centroid`) is the power-weighted mean frequency of the Hann-windowed frame, as a fraction of
    the Nyquist frequency. For a pure tone of f Hz both 1 and 2 equal f / (sample_rate / 2).
    """

    kind = "encoder"
    Params = EnergyZcrParams
    inputs = {"audio": Accepts(Audio, doc="mono audio at any sample rate")}

    def hop(self) -> int:
        """Samples per frame; a fractional hop would drift off the clip's timeline, so it is refused."""
        sample_rate = self.input_ports["audio"].sample_rate
        hop = Fraction(sample_rate) * Fraction(str(self.params.hop_ms)) / 1000
        if hop.denominator != 1:
            raise PortMismatch(None, f"hop_ms={self.params.hop_ms} is not a whole number of samples at {sample_rate} Hz")
        return int(hop)

    def outputs(self) -> dict[str, Seq]:
        dim = 3 if self.params.centroid else 2
        return {"features": Seq(dim, Fraction(self.input_ports["audio"].sample_rate, self.hop()))}

    def build(self) -> nn.Module:
        from thkit_encoder_example._energy_module import EnergyZcrModule

        return EnergyZcrModule(
            hop=self.hop(),
            fps=self.outputs()["features"].fps,
            centroid=self.params.centroid,
            normalise=self.params.normalise,
        )
