"""Image fidelity per frame: PSNR, SSIM and MS-SSIM (torchmetrics), on whole frames or inside boxes.

Conventions, as the peer systems' evaluation scripts use them:
- pixels scaled to [0, 1] (data range 1), RGB, each frame scored on its own; a video's score is the
  mean of its frames' scores (not the PSNR of the pooled error);
- SSIM with an 11-pixel Gaussian window of sigma 1.5, averaged over channels, in float32 (identical
  frames score 1 within 1e-6; float64 would be exact and nine times slower);
- MS-SSIM with the standard five scales and weights (Wang et al. 2003) when the image is large enough
  (above 160 px); a smaller image gets the largest number of scales whose coarsest one still holds a
  whole window, with the weights of those scales rescaled to sum to 1. `ms_ssim_scales` says how
  many, and results with different scale counts are not comparable.

PSNR is capped at `PSNR_CAP_DB`: identical frames score 100 dB, not infinity, so that a video's
mean stays finite and JSON can hold it. Differences that are capped (one value in about 10^5 off by
one 8-bit level) are far below anything visible.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from jaxtyping import Float, UInt8
from torch import Tensor

PSNR_CAP_DB = 100.0
WINDOW = 11  # SSIM's Gaussian window, pixels
SIGMA = 1.5
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
CHUNK = 16  # frames per torchmetrics call: bounds memory on long 512 px clips

Frames = UInt8[np.ndarray, "frames height width 3"]


def ms_ssim_scales(height: int, width: int) -> int:
    """Scales MS-SSIM uses on images of this size (0 when even one SSIM window does not fit).

    Two conditions: the coarsest scale holds a whole window, and torchmetrics' own admissibility
    check (side // (scales - 1)^2 > window - 1) passes.
    """
    side = min(height, width)
    for scales in range(len(MS_SSIM_WEIGHTS), 0, -1):
        if side >= WINDOW * 2 ** (scales - 1) and side // max(1, scales - 1) ** 2 > WINDOW - 1:
            return scales
    return 0


def psnr(pred: Frames, truth: Frames) -> Float[np.ndarray, "frames"]:
    """PSNR of each frame in dB, capped at PSNR_CAP_DB."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    scores = _chunked(pred, truth, lambda p, t: peak_signal_noise_ratio(p, t, data_range=1.0, reduction="none", dim=(1, 2, 3)))
    return np.minimum(scores, PSNR_CAP_DB)


def ssim(pred: Frames, truth: Frames) -> Float[np.ndarray, "frames"]:
    """SSIM of each frame (NaN when a frame is smaller than the window)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    if min(pred.shape[1:3]) < WINDOW:
        return np.full(pred.shape[0], np.nan)
    return _chunked(
        pred, truth, lambda p, t: structural_similarity_index_measure(p, t, sigma=SIGMA, kernel_size=WINDOW, data_range=1.0, reduction="none")
    )


def ms_ssim(pred: Frames, truth: Frames, scales: int | None = None) -> Float[np.ndarray, "frames"]:
    """MS-SSIM of each frame with `scales` scales (default: as many as the size allows; NaN when none)."""
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

    scales = ms_ssim_scales(*pred.shape[1:3]) if scales is None else scales
    if scales == 0 or ms_ssim_scales(*pred.shape[1:3]) < scales:
        return np.full(pred.shape[0], np.nan)
    weights = MS_SSIM_WEIGHTS[:scales]
    betas = tuple(weight / sum(weights) for weight in weights)
    return _chunked(
        pred,
        truth,
        lambda p, t: multiscale_structural_similarity_index_measure(
            p, t, sigma=SIGMA, kernel_size=WINDOW, data_range=1.0, betas=betas, reduction="none"
        ),
    )


def frame_scores(pred: Frames, truth: Frames) -> dict[str, Float[np.ndarray, "frames"]]:
    """psnr, ssim and ms_ssim of each whole frame."""
    return {"psnr": psnr(pred, truth), "ssim": ssim(pred, truth), "ms_ssim": ms_ssim(pred, truth)}


def box_scores(pred: Frames, truth: Frames, boxes: Float[np.ndarray, "frames 4"]) -> tuple[dict[str, Float[np.ndarray, "frames"]], int]:
    """psnr, ssim and ms_ssim inside each frame's box [x0, y0, x1, y1] (pixels), and MS-SSIM's scale count.

    A box is rounded outwards to whole pixels and clipped to the frame; frames whose box is NaN (no
    face found) score NaN. Boxes differ from frame to frame, so each frame is its own call; MS-SSIM
    uses one scale count for the whole clip, the one its smallest box allows, so frames compare.
    """
    height, width = pred.shape[1:3]
    n_frames = pred.shape[0]
    scores = {name: np.full(n_frames, np.nan) for name in ("psnr", "ssim", "ms_ssim")}
    crops = {}
    for index, box in enumerate(boxes):
        if not np.isfinite(box).all():
            continue
        x0, y0 = max(0, math.floor(box[0])), max(0, math.floor(box[1]))
        x1, y1 = min(width, math.ceil(box[2])), min(height, math.ceil(box[3]))
        if x1 - x0 >= 1 and y1 - y0 >= 1:
            crops[index] = (slice(y0, y1), slice(x0, x1))
    if not crops:
        return scores, 0
    scales = min(ms_ssim_scales(rows.stop - rows.start, cols.stop - cols.start) for rows, cols in crops.values())
    for index, (rows, cols) in crops.items():
        p, t = pred[index : index + 1, rows, cols], truth[index : index + 1, rows, cols]
        scores["psnr"][index] = psnr(p, t)[0]
        scores["ssim"][index] = ssim(p, t)[0]
        scores["ms_ssim"][index] = ms_ssim(p, t, scales)[0]
    return scores, scales


def _chunked(pred: Frames, truth: Frames, metric: Callable[[Tensor, Tensor], Tensor]) -> Float[np.ndarray, "frames"]:
    if pred.shape != truth.shape:
        raise ValueError(f"pred {list(pred.shape)} and truth {list(truth.shape)} differ in shape")
    scores = []
    for start in range(0, pred.shape[0], CHUNK):
        scores.append(metric(_tensor(pred[start : start + CHUNK]), _tensor(truth[start : start + CHUNK])).double().numpy())
    return np.concatenate(scores) if scores else np.zeros(0)


def _tensor(frames: Frames) -> Float[Tensor, "frames 3 height width"]:
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div(255)
