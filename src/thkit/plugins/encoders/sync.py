"""`sync`: DAMC's Dynamic-Sync Encoder, a SyncNet-style audio encoder trained for lip sync.

For each video frame, a window of log-mel frames centred on it (by default Wav2Lip's sync window:
80 mels at 80 Hz, 16 frames = 0.2 s = 5 video frames at 25 fps) goes through a small 2D conv stack
to a `dim`-wide embedding: Seq(dim, video fps). This is the audio branch of a lip-sync
discriminator, as in SyncTalk's AVE and Wav2Lip's SyncNet.

The plugin also holds the other half needed to train it on a subject's own video (see
`thkit.plugins.encoders._sync_train`): a visual mouth encoder over a stack of grayscale mouth
crops (`build_visual()`), a contrastive loss whose negatives are time-shifted frames, `best_offset`
to measure audio-visual offset, and `fit_sync`, which a training stage calls.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

from pydantic import Field

from thkit.core import Accepts, Audio, Component, Params, PortMismatch, Seq
from thkit.core.timebase import format_rate

if TYPE_CHECKING:
    from torch import nn

FMIN, FMAX = 55.0, 7600.0  # Wav2Lip's mel band edges (Hz); FMAX is lowered to Nyquist for low rates


class SyncParams(Params):
    dim: int = Field(512, ge=1, description="embedding width (SyncTalk's AVE and Wav2Lip's SyncNet: 512)")
    n_mels: int = Field(80, ge=1, le=512, description="mel bands")
    window: int = Field(16, ge=1, description="mel frames per video frame, centred on it (16 at 80 Hz = 0.2 s)")
    hop_ms: float = Field(
        12.5, gt=0, description="mel frame step; the mel rate is sample_rate / round(sample_rate * hop_ms / 1000)"
    )
    win_ms: float = Field(50.0, gt=0, description="mel analysis window (Wav2Lip: 800 samples at 16 kHz)")
    mouth_frames: int = Field(5, ge=1, description="video frames in the visual encoder's mouth stack, centred on the frame")
    mouth_height: int = Field(48, ge=8, description="mouth crop height in pixels (visual encoder input)")
    mouth_width: int = Field(96, ge=8, description="mouth crop width in pixels (visual encoder input)")
    temperature: float = Field(0.07, gt=0, description="softmax temperature of the contrastive sync loss")


class SyncEncoder(Component):
    """SyncNet-style audio embedding of a log-mel window around each video frame: Seq(dim, video fps)."""

    kind = "encoder"
    Params = SyncParams
    inputs = {"audio": Accepts(Audio, doc="mono speech")}

    @property
    def hop(self) -> int:
        """Mel frame step in samples (rounded to whole samples, so the mel rate stays exact)."""
        return max(1, round(self.input_ports["audio"].sample_rate * self.params.hop_ms / 1000))

    @property
    def mel_fps(self) -> Fraction:
        return Fraction(self.input_ports["audio"].sample_rate, self.hop)

    def outputs(self) -> dict[str, Seq]:
        video_fps = self.context.video_fps
        if self.params.window * video_fps < self.mel_fps:
            raise PortMismatch(
                None,
                f"window={self.params.window} mel frames at {format_rate(self.mel_fps)} Hz span less than one video frame "
                f"at {format_rate(video_fps)} fps; use window >= {-(-self.mel_fps // video_fps)}",
            )
        return {"features": Seq(self.params.dim, video_fps)}

    def build(self) -> nn.Module:
        from thkit.plugins.encoders._sync_module import SyncAudioModule

        self.outputs()
        sample_rate = self.input_ports["audio"].sample_rate
        return SyncAudioModule(
            sample_rate=sample_rate,
            n_mels=self.params.n_mels,
            hop=self.hop,
            win=max(1, round(sample_rate * self.params.win_ms / 1000)),
            fmin=FMIN,
            fmax=min(FMAX, sample_rate / 2),
            window=self.params.window,
            video_fps=self.context.video_fps,
            dim=self.params.dim,
        )

    def build_visual(self) -> nn.Module:
        """The matching mouth encoder: [frames, mouth_height, mouth_width] grayscale -> [frames, dim]."""
        from thkit.plugins.encoders._sync_module import MouthEncoder

        return MouthEncoder(
            frames=self.params.mouth_frames, height=self.params.mouth_height, width=self.params.mouth_width, dim=self.params.dim
        )
