"""The torch side of the `concat` fusion (kept apart so that validation never imports torch)."""

from __future__ import annotations

from fractions import Fraction

import torch
from torch import Tensor, nn

from thkit.core.align import pool_to_frames
from thkit.core.timebase import Timeline


class ConcatModule(nn.Module):
    def __init__(self, input_fps: dict[str, Fraction], fps: Fraction) -> None:
        super().__init__()
        self.input_fps = input_fps
        self.fps = fps

    def forward(self, inputs: dict[str, Tensor], timeline: Timeline) -> dict[str, Tensor]:
        n_frames = timeline.frames(self.fps)
        aligned = [pool_to_frames(inputs[name], rate, self.fps, n_frames) for name, rate in self.input_fps.items()]
        return {"code": torch.cat(aligned, dim=1)}  # [n_frames, sum of dims]
