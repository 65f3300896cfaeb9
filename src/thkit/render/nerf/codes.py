"""Per-frame latent codes (NeRF-W's appearance embedding, ER-NeRF's individual codes).

Each training frame gets a learned code that absorbs what the conditions cannot explain (lighting
flicker, compression, small tracking errors), so that it does not leak into the audio's effect. A
frame the table has never seen (frame id -1, or any id past the table) gets the mean of the table:
the "average" appearance. With no training frames known (n_frames 0) the table is a single code
shared by every frame.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn


class FrameCodes(nn.Module):
    def __init__(self, n_frames: int, dim: int) -> None:
        super().__init__()
        self.n_frames = max(n_frames, 1)
        self.dim = dim
        # Zero start: every frame begins at the mean appearance, and the codes only grow as far as
        # per-frame differences in the data push them.
        self.table = nn.Embedding(self.n_frames, dim)
        nn.init.zeros_(self.table.weight)

    def forward(self, frame_ids: Int[Tensor, "F"]) -> Float[Tensor, "F dim"]:
        known = (frame_ids >= 0) & (frame_ids < self.n_frames)
        codes = self.table(frame_ids.clamp(0, self.n_frames - 1))
        mean = self.table.weight.mean(dim=0, keepdim=True).expand_as(codes)
        return torch.where(known[:, None], codes, mean)
