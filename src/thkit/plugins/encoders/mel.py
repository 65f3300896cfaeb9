"""`mel`: log-mel spectrogram frames, the weight-free baseline audio feature."""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

from pydantic import Field

from thkit.core import Accepts, Audio, Component, Params, PortMismatch, Seq

if TYPE_CHECKING:
    from torch import nn


class MelParams(Params):
    n_mels: int = Field(80, ge=1, le=512, description="mel bands")
    hop_ms: float = Field(10.0, gt=0, description="frame step; the output rate is 1000/hop_ms frames per second")
    win_ms: float = Field(25.0, gt=0, description="analysis window")
    fmin: float = Field(55.0, ge=0, description="lowest band edge, Hz")
    fmax: float | None = Field(7600.0, gt=0, description="highest band edge, Hz (default: Nyquist when null)")


class MelEncoder(Component):
    """Log-mel spectrogram: [samples] -> Seq(n_mels, 1000/hop_ms)."""

    kind = "encoder"
    Params = MelParams
    inputs = {"audio": Accepts(Audio, doc="mono speech")}

    def _hop(self) -> Fraction:
        return Fraction(self.input_ports["audio"].sample_rate) * Fraction(str(self.params.hop_ms)) / 1000

    def outputs(self) -> dict[str, Seq]:
        sample_rate = self.input_ports["audio"].sample_rate
        problems = []
        if self._hop().denominator != 1 or self._hop() < 1:
            problems.append(f"hop_ms={self.params.hop_ms} is not a whole number of samples at {sample_rate} Hz")
        if self.params.fmax is not None and self.params.fmax > sample_rate / 2:
            problems.append(f"fmax={self.params.fmax} is above the Nyquist frequency {sample_rate / 2} Hz")
        if problems:
            raise PortMismatch(None, "; ".join(problems))
        return {"features": Seq(self.params.n_mels, sample_rate / self._hop())}

    def build(self) -> nn.Module:
        from thkit.plugins.encoders._mel_module import MelModule

        return MelModule(self)
