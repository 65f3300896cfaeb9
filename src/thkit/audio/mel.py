"""The one log-mel front end every component shares (the `mel` encoder, the sync encoder, ...).

torch.stft with librosa's mel filterbank: differentiable, batched on any device, and frame-exact
under thkit's timing convention (row i is centred on the middle of [i*hop, (i+1)*hop)).
"""

from __future__ import annotations

import librosa
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

LOG_FLOOR = 1e-6  # keeps log() finite on digital silence


class LogMel(nn.Module):
    """[samples] -> [frames, n_mels] natural-log mel power."""

    def __init__(
        self, sample_rate: int, n_mels: int, hop: int, win: int, fmin: float = 0.0, fmax: float | None = None
    ) -> None:
        super().__init__()
        self.hop = hop
        self.win = win
        self.n_fft = 1 << max(win - 1, 1).bit_length()  # next power of two >= win
        filters = librosa.filters.mel(sr=sample_rate, n_fft=self.n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
        self.register_buffer("filters", torch.from_numpy(filters).float(), persistent=False)  # [n_mels, n_fft/2+1]
        self.register_buffer("window", torch.hann_window(win), persistent=False)

    def forward(self, audio: Float[Tensor, "samples"], n_frames: int) -> Float[Tensor, "n_frames n_mels"]:
        if n_frames == 0:
            return audio.new_zeros(0, self.filters.shape[0])
        # Centre frame i at (i + 1/2) * hop; zero-pad so every requested frame exists.
        left = self.n_fft // 2 - self.hop // 2
        needed = (n_frames - 1) * self.hop + self.n_fft
        right = max(0, needed - left - audio.shape[0])
        padded = F.pad(audio, (left, right))[:needed]
        spectrum = torch.stft(
            padded,
            n_fft=self.n_fft,
            hop_length=self.hop,
            win_length=self.win,
            window=self.window,
            center=False,
            return_complex=True,
        )  # [n_fft/2+1, n_frames]
        power = spectrum.abs().square()
        mel = self.filters @ power  # [n_mels, n_frames]
        return torch.log(mel + LOG_FLOOR).T.contiguous()
