"""The torch side of the `energy-zcr` encoder (kept apart so that validation never imports torch)."""

from __future__ import annotations

from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thkit.core import Timeline

POWER_FLOOR = 1e-10  # mean power of digital silence: -100 dB
NORMALISE_FLOOR = 1e-5  # a column that never changes standardises to zeros, not to NaN


class EnergyZcrModule(nn.Module):
    """{"audio": [samples]} -> {"features": [timeline.frames(fps), 2 or 3]}; no trainable weights."""

    def __init__(self, hop: int, fps: Fraction, centroid: bool, normalise: bool) -> None:
        super().__init__()
        self.hop = hop
        self.fps = fps
        self.centroid = centroid
        self.normalise = normalise
        self.register_buffer("window", torch.hann_window(hop), persistent=False)
        # Frequency of each rfft bin as a fraction of Nyquist: bin k of an n-point FFT is k/n of the rate.
        self.register_buffer("bin_freqs", torch.arange(hop // 2 + 1, dtype=torch.float32) * 2 / hop, persistent=False)

    def forward(self, inputs: dict[str, Tensor], timeline: Timeline) -> dict[str, Tensor]:
        n_frames = timeline.frames(self.fps)
        length = n_frames * self.hop
        audio = inputs["audio"]
        audio = F.pad(audio, (0, max(0, length - audio.shape[0])))[:length]  # exactly the rows' samples
        frames = audio.reshape(n_frames, self.hop)

        energy = 10 * torch.log10(frames.square().mean(dim=1) + POWER_FLOOR)
        negative = frames < 0
        # A crossing is counted at the later sample of a pair, so it belongs to exactly one row;
        # the first sample of the clip has no predecessor and counts as no crossing.
        flat = negative.reshape(-1)
        changed = torch.zeros_like(flat)
        changed[1:] = flat[1:] != flat[:-1]
        zcr = changed.reshape(n_frames, self.hop).to(audio.dtype).mean(dim=1)
        columns = [energy, zcr]

        if self.centroid:
            power = torch.fft.rfft(frames * self.window, dim=1).abs().square()  # [n_frames, hop//2 + 1]
            total = power.sum(dim=1).clamp_min(torch.finfo(power.dtype).tiny)  # silence: 0 / tiny = 0
            columns.append(power @ self.bin_freqs / total)

        features = torch.stack(columns, dim=1)
        if self.normalise and n_frames > 0:
            mean = features.mean(dim=0, keepdim=True)
            std = features.std(dim=0, correction=0, keepdim=True).clamp_min(NORMALISE_FLOOR)
            features = (features - mean) / std
        return {"features": features}
