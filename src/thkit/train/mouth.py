"""Mouth crops of the subject's own frames, and the `sync` loss's fitting of sync encoders on them.

How a crop is made: every crop has the mouth encoder's aspect (`mouth_width : mouth_height`) and
one size for the whole clip, `CROP_SCALE` times the clip's median lip-box width (or of its height
times the aspect, if that is larger), so mouth opening shows as shape, not as zoom. Each crop is
centred on its frame's lip box (landmarks 48-67), taken from the frame in grayscale (ITU-R BT.601
weights) with bilinear resampling to `mouth_height x mouth_width`, values in [0, 1]; where it
reaches past the frame the edge pixels are repeated.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thkit.core.errors import ThkitError
from thkit.train.subject import Subject

CROP_SCALE = 1.5
GRAY = (0.299, 0.587, 0.114)
CHUNK = 64  # frames resampled at once


def mouth_crops(subject: Subject, frames: Sequence[int], height: int, width: int) -> Tensor:
    """[len(frames), height, width] grayscale mouth crops in [0, 1] (see the module docstring)."""
    boxes = subject.lip_boxes[list(frames)]
    aspect = width / height
    sizes = torch.maximum(boxes[:, 2] - boxes[:, 0], (boxes[:, 3] - boxes[:, 1]) * aspect)
    crop_width = CROP_SCALE * float(sizes.median())
    if not np.isfinite(crop_width) or crop_width <= 0:
        raise ThkitError(f"{subject.dataset.root}: the lip boxes are empty, so no mouth crops can be made for the sync loss")
    crop_height = crop_width / aspect
    centres = torch.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], dim=-1)
    gray = torch.tensor(GRAY)
    crops = []
    for start in range(0, len(frames), CHUNK):
        part = list(frames[start : start + CHUNK])
        images = torch.stack([subject.image(index)[0] for index in part]).float().div(255) @ gray  # [n, H, W]
        centre = centres[start : start + len(part)]
        # affine_grid maps output [-1, 1] to input [-1, 1]; with align_corners=False, -1 is the frame's left edge.
        theta = torch.zeros(len(part), 2, 3)
        theta[:, 0, 0] = crop_width / subject.width
        theta[:, 1, 1] = crop_height / subject.height
        theta[:, 0, 2] = 2 * centre[:, 0] / subject.width - 1
        theta[:, 1, 2] = 2 * centre[:, 1] / subject.height - 1
        grid = F.affine_grid(theta, [len(part), 1, height, width], align_corners=False)
        crops.append(F.grid_sample(images[:, None], grid, mode="bilinear", padding_mode="border", align_corners=False)[:, 0])
    return torch.cat(crops)


def fit_sync_encoder(
    audio_module: nn.Module, visual_module: nn.Module, audio: Tensor, crops: Tensor, steps: int, *, temperature: float, lr: float, seed: int
) -> list[float]:
    """`fit_sync` on one clip; too short a clip is a user error rather than a ValueError."""
    from thkit.plugins.encoders._sync_train import fit_sync

    device = next(audio_module.parameters()).device
    try:
        return fit_sync(audio_module, visual_module, audio.to(device), crops.to(device), steps, temperature=temperature, lr=lr, seed=seed)
    except ValueError as error:
        raise ThkitError(f"the sync loss cannot train on this subject: {error}", hint="use a longer clip") from None
