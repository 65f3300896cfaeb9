"""`mel`: log-mel spectrogram frames, the weight-free baseline audio feature."""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

from pydantic import Field

from thkit.core import Accepts, Audio, Component, Params, PortMismatch, Seq, Timeline

if TYPE_CHECKING:
    from torch import Tensor, nn


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

    def _hop(self) -> int:
        sample_rate = self.input_ports["audio"].sample_rate
        hop = Fraction(sample_rate) * Fraction(str(self.params.hop_ms)) / 1000
        if hop.denominator != 1:
            raise PortMismatch(None, f"hop_ms={self.params.hop_ms} is not a whole number of samples at {sample_rate} Hz")
        return int(hop)

    def outputs(self) -> dict[str, Seq]:
        sample_rate = self.input_ports["audio"].sample_rate
        if self.params.fmax is not None and self.params.fmax > sample_rate / 2:
            raise PortMismatch(None, f"fmax={self.params.fmax} is above the Nyquist frequency {sample_rate / 2} Hz")
        return {"features": Seq(self.params.n_mels, Fraction(sample_rate, self._hop()))}

    def build(self) -> nn.Module:
        from thkit.plugins.encoders._mel_module import MelModule

        return MelModule(self)
