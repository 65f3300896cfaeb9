"""Inputs for the evaluation tests: a short synthetic subject that dlib finds, and video files of it."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from thkit.data.layout import SAMPLE_RATE, Dataset

SECONDS, SIZE = 3, 96  # 75 frames; dlib's face detector needs about 80 px faces, so not the 64 px of the fast demo


@pytest.fixture(scope="session")
def subject(tmp_path_factory) -> Dataset:
    from thkit.data.synth import generate

    return Dataset(generate(tmp_path_factory.mktemp("eval-subject") / "subject", seconds=SECONDS, size=SIZE, seed=0, progress=False))


@pytest.fixture(scope="session")
def subject_frames(subject: Dataset) -> np.ndarray:
    """[75, 96, 96, 3] uint8: every frame of the subject."""
    return np.stack([subject.frame(index) for index in range(len(subject))])


@pytest.fixture(scope="session")
def run_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("eval-cache")


@pytest.fixture(scope="session")
def trained_run(run_cache, tmp_path_factory) -> Path:
    """The render tests' tiny trained run (their spec, sizes and options), trained once per session.

    Imported when first needed, so that the tests without a run do not depend on the render tests' conftest."""
    from tests.render import conftest as render
    from thkit.train import train

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("THKIT_CACHE", str(run_cache))
        return train(render.SPEC, tmp_path_factory.mktemp("tiny") / "run", overrides=render.TINY, options=render.OPTIONS, progress=False)


@pytest.fixture
def tiny_run(trained_run, run_cache, monkeypatch) -> Path:
    """The tiny run, with the test's feature cache inside the session's tmp (rendering encodes audio)."""
    monkeypatch.setenv("THKIT_CACHE", str(run_cache))
    return trained_run


@pytest.fixture
def no_weights(tmp_path_factory, monkeypatch) -> None:
    """No pretrained weights: the weighted metrics report "skipped" quickly, whatever this machine holds
    (not autouse: test_weighted.py sets its own weights folders)."""
    monkeypatch.setenv("THKIT_WEIGHTS", str(tmp_path_factory.getbasetemp() / "no-weights"))


def write_video(path: Path, frames: np.ndarray, fps: Fraction, audio: np.ndarray | None = None) -> Path:
    """An mp4 of `frames` (with `audio` at 16 kHz muxed in when given, else silence)."""
    from thkit.render.video import AudioVideoWriter

    if audio is None:
        audio = np.zeros(-(-frames.shape[0] * SAMPLE_RATE * fps.denominator // fps.numerator), dtype=np.float32)
    with AudioVideoWriter(path, width=frames.shape[2], height=frames.shape[1], fps=fps, audio=audio, sample_rate=SAMPLE_RATE) as writer:
        for frame in frames:
            writer.add(frame)
    return path
