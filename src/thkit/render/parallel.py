"""Frames drawn several at a time on a CPU, each on one core, and handed back in order.

Why not torch's own threads: a frame is thousands of small tensor operations (a few hundred
thousand samples each), and splitting every one of them across cores spends much of the time
waiting at the end of each; drawing whole frames side by side keeps every core busy on its own
frame. torch releases the GIL inside its operators, so Python threads suffice (no processes, no
copy of the model). While frames are drawn this way torch's intra-op threads are set to one, and
restored afterwards.

Each worker enters `torch.inference_mode` itself: grad mode is per thread. The first frame is drawn
alone, so that what renderers build on their first call (occupancy masks, density caches) is built
once, before any thread reads it.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch


def default_workers(device: torch.device) -> int:
    """Frames in flight: one per intra-op thread torch would use on a CPU (one on a GPU, which is already parallel)."""
    return 1 if device.type != "cpu" else max(1, torch.get_num_threads())


def frames_in_order(draw: Callable[[int], np.ndarray], n_frames: int, workers: int) -> Iterator[np.ndarray]:
    """`draw(0)`, ..., `draw(n_frames - 1)`, computed `workers` at a time (see the module docstring)."""
    if workers <= 1 or n_frames <= 1:
        for index in range(n_frames):
            yield draw(index)
        return
    yield draw(0)

    def drawn(index: int) -> np.ndarray:
        with torch.inference_mode():
            return draw(index)

    with _one_intra_op_thread(), ThreadPoolExecutor(max_workers=workers, thread_name_prefix="thkit-frame") as pool:
        pending: deque[Future[np.ndarray]] = deque()
        upcoming = iter(range(1, n_frames))
        for index in upcoming:
            pending.append(pool.submit(drawn, index))
            if len(pending) == 2 * workers:  # a frame ahead per worker, so none waits on the consumer
                break
        while pending:
            frame = pending.popleft().result()
            next_index = next(upcoming, None)
            if next_index is not None:
                pending.append(pool.submit(drawn, next_index))
            yield frame


@contextlib.contextmanager
def _one_intra_op_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
