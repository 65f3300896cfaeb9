"""The torch side of the `sync` encoder: the audio encoder and its matching mouth encoder.

Both follow Wav2Lip's SyncNet (and SyncTalk's AVE, which is its audio branch): 2D conv stacks of
conv + BatchNorm + ReLU with residual convs between strided stages, ending in a linear layer to
`dim`. Channel widths scale with `dim` (32, 64, 128, 256 at dim 512, as in Wav2Lip), so a small
`dim` gives a small, CPU-friendly network. The final layer is a flatten + linear rather than a
global pool, so the embedding knows *where* in the window a sound or a mouth shape sits: that is
the information lip sync is about.
"""

from __future__ import annotations

from fractions import Fraction

import torch
from jaxtyping import Float
from torch import Tensor, nn

from thkit.audio.mel import LogMel
from thkit.core.align import windows_to_frames
from thkit.core.timebase import Timeline, window_indices

CHUNK = 256  # windows per forward pass in eval mode, to bound activation memory on long clips


class ConvBlock(nn.Module):
    """conv 3x3 (or `kernel`) + BatchNorm + ReLU, with a residual connection when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int | tuple[int, int] = 1, kernel: int = 3, residual: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)
        self.norm = nn.BatchNorm2d(cout)
        self.residual = residual

    def forward(self, x: Tensor) -> Tensor:
        y = self.norm(self.conv(x))
        return torch.relu(y + x if self.residual else y)


def _stage(cin: int, cout: int, stride: int | tuple[int, int]) -> list[nn.Module]:
    return [ConvBlock(cin, cout, stride), ConvBlock(cout, cout, residual=True)]


def _widths(dim: int) -> tuple[int, int, int, int]:
    base = max(8, dim // 16)
    return base, 2 * base, 4 * base, 8 * base


class ConvEncoder(nn.Module):
    """[batch, channels, height, width] -> [batch, dim]: conv stages, flatten, linear."""

    def __init__(self, layers: list[nn.Module], in_shape: tuple[int, int, int], dim: int) -> None:
        super().__init__()
        self.features = nn.Sequential(*layers)
        with torch.no_grad():
            flat = self.features(torch.zeros(2, *in_shape)).flatten(1).shape[1]
        self.head = nn.Linear(flat, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).flatten(1))


def _chunked(encoder: nn.Module, x: Tensor) -> Tensor:
    if encoder.training or x.shape[0] <= CHUNK:  # training: BatchNorm must see the whole batch
        return encoder(x)
    return torch.cat([encoder(part) for part in x.split(CHUNK)], dim=0)


class SyncAudioModule(nn.Module):
    """audio -> log-mel -> a `window` of mel frames around each video frame -> conv stack -> [frames, dim]."""

    def __init__(
        self,
        *,
        sample_rate: int,
        n_mels: int,
        hop: int,
        win: int,
        fmin: float,
        fmax: float,
        window: int,
        video_fps: Fraction,
        dim: int,
    ) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.mel_fps = Fraction(sample_rate, hop)
        self.video_fps = video_fps
        self.window = window
        self.dim = dim
        self.mel = LogMel(sample_rate, n_mels, hop, win, fmin, fmax)
        c1, c2, c3, c4 = _widths(dim)
        # Wav2Lip's audio strides: the mel axis shrinks by 3 per stage, time only at the end.
        layers = _stage(1, c1, 1) + _stage(c1, c2, (3, 1)) + _stage(c2, c3, 3) + _stage(c3, c4, (3, 2))
        self.encoder = ConvEncoder(layers, (1, n_mels, window), dim)

    def log_mel(self, audio: Float[Tensor, "samples"]) -> Float[Tensor, "mel_frames n_mels"]:
        """The whole clip's log-mel frames at `mel_fps` (audio at `sample_rate`)."""
        return self.mel(audio, Timeline(audio.shape[0], self.sample_rate).frames(self.mel_fps))

    def mel_windows(self, mel: Float[Tensor, "mel_frames n_mels"], n_frames: int) -> Float[Tensor, "frames 1 n_mels window"]:
        """The `window` mel frames centred on each of `n_frames` video frames, as 1-channel images."""
        return windows_to_frames(mel, self.mel_fps, self.video_fps, n_frames, self.window).transpose(1, 2).unsqueeze(1)

    def embed(self, windows: Float[Tensor, "batch 1 n_mels window"]) -> Float[Tensor, "batch dim"]:
        return _chunked(self.encoder, windows)

    def forward(self, inputs: dict[str, Tensor], timeline: Timeline) -> dict[str, Tensor]:
        audio = inputs["audio"]
        n_frames = timeline.frames(self.video_fps)
        if n_frames == 0:
            return {"features": audio.new_zeros(0, self.dim)}
        mel = self.mel(audio, timeline.frames(self.mel_fps))
        return {"features": self.embed(self.mel_windows(mel, n_frames))}


class MouthEncoder(nn.Module):
    """[frames, height, width] grayscale mouth crops in [0, 1] -> [frames, dim].

    Frame t is encoded from the stack of `frames` crops centred on it (clamped at the ends), the
    crops as channels, as Wav2Lip's SyncNet face branch does with its 5-frame window.
    """

    def __init__(self, *, frames: int, height: int, width: int, dim: int) -> None:
        super().__init__()
        self.frames = frames
        self.size = (height, width)
        c1, c2, c3, c4 = _widths(dim)
        layers = [ConvBlock(frames, c1, kernel=5)] + _stage(c1, c2, 2) + _stage(c2, c3, 2) + _stage(c3, c4, 2)
        layers += [ConvBlock(c4, c4, 2)]
        self.encoder = ConvEncoder(layers, (frames, height, width), dim)

    def stack_index(self, n_frames: int) -> Tensor:
        """[n_frames, frames] indices of the crops stacked for each frame."""
        return torch.from_numpy(window_indices(n_frames, 1, 1, n_frames, self.frames))

    def check(self, mouth: Tensor) -> None:
        if mouth.ndim != 3 or tuple(mouth.shape[1:]) != self.size:
            raise ValueError(f"mouth crops must be [frames, {self.size[0]}, {self.size[1]}] grayscale, got {list(mouth.shape)}")

    def embed(self, stacks: Float[Tensor, "batch frames height width"]) -> Float[Tensor, "batch dim"]:
        return _chunked(self.encoder, stacks - 0.5)

    def forward(self, mouth: Float[Tensor, "frames height width"]) -> Float[Tensor, "frames dim"]:
        self.check(mouth)
        if mouth.shape[0] == 0:
            return mouth.new_zeros(0, self.encoder.head.out_features)
        return self.embed(mouth[self.stack_index(mouth.shape[0]).to(mouth.device)])
