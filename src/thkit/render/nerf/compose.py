"""Compositing premultiplied rgba, and the alpha entropy regulariser.

Every renderer returns colour premultiplied by alpha (`thkit.core.pixels`), so stacking layers is
one formula with no division: front + (1 - front alpha) * back, for colour and alpha alike.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

ENTROPY_CLAMP = 1e-5  # keeps log finite at alpha 0 and 1; the entropy there is ~2e-4 bits, not exactly 0


def over(front: Float[Tensor, "R 4"], back: Float[Tensor, "R 4"]) -> Float[Tensor, "R 4"]:
    """Premultiplied `front` over premultiplied `back`."""
    return front + (1.0 - front[:, 3:4]) * back


def over_background(rgba: Float[Tensor, "R 4"], background: Float[Tensor, "R 3"]) -> Float[Tensor, "R 3"]:
    """Premultiplied rgba over an opaque background colour (the dataset's plate)."""
    return rgba[:, :3] + (1.0 - rgba[:, 3:4]) * background


def alpha_entropy(alpha: Float[Tensor, "*shape"]) -> Float[Tensor, "*shape"]:
    """Binary entropy of alpha in bits: 0 for fully opaque or transparent pixels, 1 at alpha 0.5.

    ER-NeRF's weights-sum entropy: pushing it down removes half-transparent haze around the head.
    """
    a = alpha.clamp(ENTROPY_CLAMP, 1.0 - ENTROPY_CLAMP)
    return -(a * torch.log2(a) + (1.0 - a) * torch.log2(1.0 - a))
