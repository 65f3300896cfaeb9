"""A tiny trained run for the render tests: examples/demo.yaml at the demo's fast sizes, on 2 s of
the synthetic subject at 64 px, trained for a few steps with every cache inside the session's tmp."""

from __future__ import annotations

from pathlib import Path

import pytest

from thkit.demo import FAST, SPEC
from thkit.train.trainer import TrainOptions

TINY = (*FAST, "data.synthetic.seconds=2")
OPTIONS = TrainOptions(rays=256, preview_frames=0, render_chunk=4096)


@pytest.fixture(scope="session")
def render_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("render-cache")


@pytest.fixture(autouse=True)
def private_cache(render_cache, monkeypatch):
    """Datasets and features go to the session's cache, never to ~/.cache/thkit."""
    monkeypatch.setenv("THKIT_CACHE", str(render_cache))


@pytest.fixture(scope="session")
def tiny_run(render_cache, tmp_path_factory) -> Path:
    from thkit.train import train

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("THKIT_CACHE", str(render_cache))
        return train(SPEC, tmp_path_factory.mktemp("tiny") / "run", overrides=TINY, options=OPTIONS, progress=False)
