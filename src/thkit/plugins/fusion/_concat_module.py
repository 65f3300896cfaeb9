"""The torch side of the `concat` fusion (kept apart so that validation never imports torch)."""

from __future__ import annotations

from fractions import Fraction

import torch
from torch import Tensor, nn

from thkit.core.align import pool_to_frames
from thkit.core.timebase import Timeline
from thkit.plugins.fusion._smoothing import TemporalSmoother


class ConcatModule(nn.Module):
    def __init__(self, input_fps: dict[str, Fraction], fps: Fraction, width: int, smooth: int = 0) -> None:
        super().__init__()
        self.input_fps = input_fps
        self.fps = fps
        # Without smoothing the module has no parameters at all, exactly as before `smooth` existed.
        self.smoother = TemporalSmoother(width, smooth) if smooth else None

    def forward(self, inputs: dict[str, Tensor], timeline: Timeline) -> dict[str, Tensor]:
        n_frames = timeline.frames(self.fps)
        aligned = [pool_to_frames(inputs[name], rate, self.fps, n_frames) for name, rate in self.input_fps.items()]
        code = torch.cat(aligned, dim=1)  # [n_frames, sum of dims]
        return {"code": code if self.smoother is None else self.smoother(code)}
