"""Apply the exact index maps of `thkit.core.timebase` to tensors (this module imports torch)."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from thkit.core.timebase import Rate, frame_spans, window_indices


def pool_to_frames(seq: Float[Tensor, "n_in dim"], in_fps: Rate, out_fps: Rate, n_out: int) -> Float[Tensor, "n_out dim"]:
    """Mean of the input rows overlapping each output row's time span.

    Downsampling averages (100 Hz mel into 25 fps: 4 rows each); upsampling repeats the row that
    covers the output span. Differentiable.
    """
    start, stop = frame_spans(n_out, out_fps, in_fps, seq.shape[0])
    start_t = torch.from_numpy(start).to(seq.device)
    stop_t = torch.from_numpy(stop).to(seq.device)
    zero = seq.new_zeros(1, seq.shape[1])
    cumulative = torch.cat([zero, torch.cumsum(seq, dim=0)], dim=0)  # [n_in + 1, dim]
    counts = (stop_t - start_t).to(seq.dtype).unsqueeze(1)
    return (cumulative[stop_t] - cumulative[start_t]) / counts


def windows_to_frames(
    seq: Float[Tensor, "n_in dim"], in_fps: Rate, out_fps: Rate, n_out: int, window: int
) -> Float[Tensor, "n_out window dim"]:
    """`window` input rows centred on each output row (clamped at the clip's ends)."""
    index = window_indices(n_out, out_fps, in_fps, seq.shape[0], window)
    return seq[torch.from_numpy(index).to(seq.device)]
