"""Learned temporal smoothing of a per-frame code, shared by the `concat` and `csfm` fusions.

This is ER-NeRF's AudioAttNet (nerf_triplane/network.py): for each frame, take the codes of
`window` neighbouring frames, score each neighbour with a small 1D conv stack over time
(dim -> 16 -> 8 -> 4 -> 2 -> 1 channels, LeakyReLU 0.02), mix the scores with one linear layer
over the window, softmax them into weights, and return the weighted sum of the neighbours' codes.
ER-NeRF uses 8 frames centred on the frame (`--att 2`); the window here is centred the same way
through `thkit.core.align.windows_to_frames` and clamped at the clip's ends.

Initialisation: the final linear layer starts at zero, so the weights start exactly uniform and
the module starts as a plain moving average over the window. That is the behaviour the module
exists for (removing frame-to-frame jitter in the code, which shows as lip flicker), it keeps the
code's scale, and it is what ER-NeRF's randomly initialised AudioAttNet approximates anyway (small
random logits give near-uniform softmax weights). Training then sharpens the weights towards the
frames that matter. The zero layer still receives gradient from the first step (its input, the
conv scores, is not zero), so nothing is stuck.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor, nn

from thkit.core.align import windows_to_frames

SCORE_CHANNELS = (16, 8, 4, 2, 1)  # ER-NeRF's AudioAttNet conv widths


class TemporalSmoother(nn.Module):
    """[frames, dim] -> [frames, dim]: each frame becomes a learned convex mix of its neighbours."""

    def __init__(self, dim: int, window: int) -> None:
        super().__init__()
        if window < 1:
            raise ValueError(f"smoothing window must be at least 1 frame, got {window}")
        self.window = window
        layers: list[nn.Module] = []
        width = dim
        for channels in SCORE_CHANNELS:
            layers += [nn.Conv1d(width, channels, kernel_size=3, padding=1), nn.LeakyReLU(0.02)]
            width = channels
        self.score = nn.Sequential(*layers[:-1])  # no activation on the final score, as in ER-NeRF
        self.mix = nn.Linear(window, window)
        nn.init.zeros_(self.mix.weight)
        nn.init.zeros_(self.mix.bias)

    def weights(self, code: Float[Tensor, "frames dim"]) -> Float[Tensor, "frames window"]:
        """Softmax weights over each frame's `window` neighbours (earliest first)."""
        return self._weigh(self._neighbours(code))

    def forward(self, code: Float[Tensor, "frames dim"]) -> Float[Tensor, "frames dim"]:
        if code.shape[0] == 0:
            return code
        neighbours = self._neighbours(code)
        return torch.einsum("fw,fwd->fd", self._weigh(neighbours), neighbours)

    def _neighbours(self, code: Float[Tensor, "frames dim"]) -> Float[Tensor, "frames window dim"]:
        return windows_to_frames(code, 1, 1, code.shape[0], self.window)

    def _weigh(self, neighbours: Float[Tensor, "frames window dim"]) -> Float[Tensor, "frames window"]:
        scores = self.score(neighbours.transpose(1, 2)).squeeze(1)  # [frames, window]
        return torch.softmax(self.mix(scores), dim=1)
