"""The folder a training benchmark keeps its runs and its feature cache in (shared by bench_growth and bench_quality)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def work_folder(work: Path | None, prefix: str, threads: int) -> Iterator[Path]:
    """`work` (made if missing), or a temporary folder deleted afterwards; `$THKIT_CACHE` defaults to
    its `cache/` (so the synthetic subject is made once per folder), and torch uses `threads` threads
    (0: torch's own choice)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix=prefix) as temporary:
        folder = work or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("THKIT_CACHE", str(folder / "cache"))
        yield folder
