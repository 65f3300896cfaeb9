"""Staged training of a spec's graph on one subject, into a run folder (`thkit build SPEC`).

`train(spec, out)` resolves the spec's data to a dataset, runs its stages in order, and leaves a
run folder (`thkit.train.run`): the resolved spec, weights, resumable state, metrics, TensorBoard
logs and a preview video. Importing this package imports no torch (its `checks` module is a hook
plugin that runs during spec validation); `train` loads the trainer on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from thkit.train.trainer import TrainOptions, train

__all__ = ["TrainOptions", "train"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from thkit.train import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'thkit.train' has no attribute '{name}'")
