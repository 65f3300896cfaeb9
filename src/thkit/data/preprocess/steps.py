"""Resumable steps: each finished step's result is kept under DATASET/.work/ so a killed run resumes.

```
DATASET/.work/
  config.json        the input and settings these results belong to
  <step>.npz         the step's arrays
  <step>.done        written last (atomically): the step's small JSON facts and warnings
  steps.log          one line per step computed, so tests and people can see what was redone
```

A step counts as done only when its `.done` marker exists, and the marker is written after the
arrays and after any files the step writes into the dataset itself (frames, masks), so a run
killed at any moment redoes at most the step it was in. Warnings a step raised are stored with it
and raised again when a later run reuses the result, so resuming never hides a problem.
"""

from __future__ import annotations

import io
import json
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thkit.data.layout import atomic_write_bytes
from thkit.data.preprocess import problems

WORK = ".work"


@dataclass
class StepResult:
    arrays: dict[str, np.ndarray]
    facts: dict[str, Any] = field(default_factory=dict)  # JSON-able scalars, lists and dicts
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (warning class name, message)


class StepStore:
    """The .work folder of one dataset being written."""

    def __init__(self, root: Path, config: dict[str, Any]) -> None:
        self.dir = Path(root) / WORK
        config_path = self.dir / "config.json"
        self.started_over = config_path.is_file() and json.loads(config_path.read_text()) != config
        if self.started_over:
            warnings.warn(
                f"{root}: the results there are from another video or other settings; starting over",
                problems.PreprocessWarning,
                stacklevel=3,
            )
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        if not config_path.is_file():
            atomic_write_bytes(config_path, (json.dumps(config, indent=2) + "\n").encode())

    def done(self, name: str) -> bool:
        return (self.dir / f"{name}.done").is_file()

    def run(self, name: str, compute: Callable[[], StepResult]) -> StepResult:
        """The step's stored result, or compute it (catching its warnings), store it, and log it."""
        if self.done(name):
            result = self._load(name)
            for category, message in result.warnings:
                warnings.warn(message, getattr(problems, category, problems.PreprocessWarning), stacklevel=3)
            return result
        started = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = compute()
        for warning in caught:
            if issubclass(warning.category, problems.PreprocessWarning):
                result.warnings.append((warning.category.__name__, str(warning.message)))
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        self._save(name, result)
        with open(self.dir / "steps.log", "a") as log:
            log.write(f"{name} {time.perf_counter() - started:.2f}s\n")
        return result

    def log(self) -> list[str]:
        """The names of the steps computed (not reused) so far, in order, over every run."""
        path = self.dir / "steps.log"
        return [line.split()[0] for line in path.read_text().splitlines()] if path.is_file() else []

    def _save(self, name: str, result: StepResult) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, **result.arrays)
        atomic_write_bytes(self.dir / f"{name}.npz", buffer.getvalue())
        marker = {"facts": result.facts, "warnings": result.warnings}
        atomic_write_bytes(self.dir / f"{name}.done", (json.dumps(marker, indent=1) + "\n").encode())

    def _load(self, name: str) -> StepResult:
        marker = json.loads((self.dir / f"{name}.done").read_text())
        with np.load(self.dir / f"{name}.npz", allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
        return StepResult(arrays, marker["facts"], [tuple(item) for item in marker["warnings"]])


class Bars:
    """Rich progress bars, one per step, or nothing when progress is off."""

    def __init__(self, enabled: bool) -> None:
        self._progress = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("{task.description:<12}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                transient=False,
            )

    def __enter__(self) -> Bars:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    @contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        """Yields `advance(n)`; the bar is completed when the block ends."""
        if self._progress is None:
            yield lambda n=1: None
            return
        task_id = self._progress.add_task(description, total=total)
        yield lambda n=1: self._progress.advance(task_id, n)
        if total is not None:
            self._progress.update(task_id, completed=total)

    def note(self, description: str) -> None:
        """A finished line for a step that was reused from an earlier run."""
        if self._progress is not None:
            self._progress.add_task(f"{description} [dim](done before)[/dim]", total=1, completed=1)
