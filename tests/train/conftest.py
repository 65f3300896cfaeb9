"""Fixtures for the trainer's tests: one small synthetic subject for the session, toy specs, fast options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from thkit.core import hooks
from thkit.core.spec import DataSpec, SyntheticData
from thkit.train import checks
from thkit.train import lpips as lpips_module
from thkit.train.data import resolve_dataset
from thkit.train.trainer import TrainOptions

FAST = TrainOptions(frames=2, rays=256, checkpoint_every=1000, log_every=1, preview_frames=2, render_chunk=2048, seed=0)


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def subject(cache) -> Path:
    """The synthetic subject (2 s at 64 px: 46 train and 4 validation frames), made through the data cache."""
    return resolve_dataset(DataSpec(synthetic=SyntheticData(seconds=2, size=64, seed=0)), cache, progress=False)


@pytest.fixture
def checks_plugin():
    """thkit.train.checks registered as a hook plugin (as its entry point will), for one test."""
    manager = hooks.plugin_manager()
    if manager.is_registered(checks):  # installed as the built-in hook plugin
        yield
        return
    manager.register(checks, name="test-train-checks")
    yield
    manager.unregister(name="test-train-checks")


def write_spec(folder: Path, text: str, name: str = "spec.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def save_random_lpips_weights(folder):
    """A randomly initialised AlexNet (torchvision's key names) and lpips heads, as .pth files."""
    from torch import nn

    torch.manual_seed(0)
    features = nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
    )  # fmt: skip
    backbone = {f"features.{key}": value for key, value in features.state_dict().items()}
    backbone["classifier.1.weight"] = torch.zeros(4096, 9216)  # present in torchvision's file, ignored
    heads = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate(lpips_module.CHANNELS)}
    (folder / "lpips").mkdir(parents=True)
    torch.save(backbone, folder / "lpips" / "alexnet.pth")
    torch.save(heads, folder / "lpips" / "alex.pth")
