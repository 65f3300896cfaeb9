"""Reading and writing many frames with the second core busy: a bounded read-ahead and a write pool.

JPEG and PNG coding release the GIL (OpenCV, Pillow), so one helper thread overlaps them with the
main thread's work. Both queues are bounded, so a long clip never piles frames up in memory.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np

T = TypeVar("T")
R = TypeVar("R")

DEPTH = 8


def read_ahead(read: Callable[[T], R], items: Iterable[T], depth: int = DEPTH) -> Iterator[R]:
    """`read(item)` for each item, in order, computed up to `depth` items ahead in a thread."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: deque[Future[R]] = deque()
        for item in items:
            pending.append(pool.submit(read, item))
            if len(pending) >= depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def read_rgb(path: Path) -> np.ndarray:
    picture = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if picture is None:
        raise FileNotFoundError(path)
    return cv2.cvtColor(picture, cv2.COLOR_BGR2RGB)


def read_gray(path: Path) -> np.ndarray:
    picture = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if picture is None:
        raise FileNotFoundError(path)
    return picture


class WritePool:
    """Runs write calls in a helper thread, at most `depth` outstanding; errors surface on close."""

    def __init__(self, depth: int = DEPTH) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._pending: deque[Future[None]] = deque()
        self._depth = depth

    def submit(self, write: Callable[..., None], *args: object) -> None:
        self._pending.append(self._pool.submit(write, *args))
        while len(self._pending) >= self._depth:
            self._pending.popleft().result()

    def __enter__(self) -> WritePool:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._pool.shutdown(wait=True)
