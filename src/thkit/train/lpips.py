"""LPIPS (Zhang et al. 2018), the "alex" variant of lpips v0.1, without torchvision or the lpips package.

The distance between two images is, for the ReLU outputs of AlexNet's five conv layers: unit-normalise
each pixel's channel vector, square the difference, weight the channels by a learned non-negative
1x1 head, average over the pixels, and sum over the layers. Inputs in [0, 1] are mapped to [-1, 1]
and standardised as lpips does. This module imports torch only when a network is loaded, so spec
validation can ask whether the weights exist without it.

Weights. No PyPI package ships the ImageNet AlexNet (torchvision downloads it at run time; this
machine has no working torchvision), so LPIPS needs two files under `$THKIT_WEIGHTS/lpips/`
(default `~/.cache/thkit/weights/lpips/`), each as `.safetensors` or `.pth` (read with
`torch.load(weights_only=True)`, which runs no code):

- `alexnet`: torchvision's AlexNet state dict (`alexnet-owt-7be5be79.pth` from download.pytorch.org,
  renamed); only its `features.*` tensors are read;
- `alex`: lpips' linear heads (`lpips/weights/v0.1/alex.pth` inside the lpips wheel, which
  `pip download lpips --no-deps` fetches): `lin0.model.1.weight` .. `lin4.model.1.weight`.

Patches must be at least 32 pixels square: smaller ones vanish in AlexNet's strided layers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from thkit.core.errors import ThkitError

if TYPE_CHECKING:
    from torch import Tensor

WEIGHTS_ENV = "THKIT_WEIGHTS"
BACKBONE, HEADS = "alexnet", "alex"  # file stems under <weights>/lpips/
CHANNELS = (64, 192, 384, 256, 256)
TAPS = (1, 4, 7, 9, 11)  # indices of the ReLUs after conv1..conv5 in torchvision's AlexNet.features
SHIFT = (-0.030, -0.088, -0.188)  # lpips' ScalingLayer, for inputs in [-1, 1]
SCALE = (0.458, 0.448, 0.450)
MIN_SIZE = 32


def weights_root() -> Path:
    """`$THKIT_WEIGHTS`, else `~/.cache/thkit/weights`."""
    configured = os.environ.get(WEIGHTS_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "thkit" / "weights"


def weight_file(stem: str) -> Path | None:
    """`<weights>/lpips/<stem>.safetensors` or `.pth`, whichever exists."""
    for suffix in (".safetensors", ".pth"):
        path = weights_root() / "lpips" / f"{stem}{suffix}"
        if path.is_file():
            return path
    return None


def missing_weights() -> str | None:
    """Why LPIPS cannot be loaded (where to put which file), or None when both files are there."""
    folder = weights_root() / "lpips"
    missing = []
    if weight_file(BACKBONE) is None:
        missing.append(f"torchvision's ImageNet AlexNet (alexnet-owt-7be5be79.pth) as {folder / BACKBONE}.pth")
    if weight_file(HEADS) is None:
        missing.append(f"lpips' v0.1 linear heads (lpips/weights/v0.1/alex.pth from the lpips wheel) as {folder / HEADS}.pth")
    if not missing:
        return None
    return (
        "the lpips loss needs AlexNet weights, which no PyPI package ships: put "
        + " and ".join(missing)
        + f" (or set ${WEIGHTS_ENV} to a folder holding lpips/), or drop lpips from this stage"
    )


def _read(path: Path) -> dict[str, Tensor]:
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a corrupt or foreign file: say which one
        raise ThkitError(f"{path}: not a readable weights file ({type(error).__name__}: {error})") from None


class Lpips:
    """LPIPS-alex with frozen weights: `lpips(a, b)` -> [batch] distances for [batch, 3, H, W] in [0, 1]."""

    def __init__(self, device: str = "cpu") -> None:
        import torch
        from torch import nn

        problem = missing_weights()
        if problem is not None:
            raise ThkitError(problem)
        backbone, heads = _read(weight_file(BACKBONE)), _read(weight_file(HEADS))  # type: ignore[arg-type]
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
        )  # fmt: skip
        wanted = {name.removeprefix("features."): tensor for name, tensor in backbone.items() if name.startswith("features.")}
        try:
            self.features.load_state_dict(wanted)
            self.heads = {tap: heads[f"lin{k}.model.1.weight"].reshape(1, channels, 1, 1) for k, (tap, channels) in enumerate(zip(TAPS, CHANNELS))}
        except (RuntimeError, KeyError) as error:
            raise ThkitError(f"LPIPS weights in {weights_root() / 'lpips'} do not fit AlexNet: {error}") from None
        self.features.to(device).eval().requires_grad_(False)
        self.heads = {tap: head.to(device) for tap, head in self.heads.items()}
        self.shift = torch.tensor(SHIFT, device=device).reshape(1, 3, 1, 1)
        self.scale = torch.tensor(SCALE, device=device).reshape(1, 3, 1, 1)

    def __call__(self, a: Tensor, b: Tensor) -> Tensor:
        if min(a.shape[-2:]) < MIN_SIZE:
            raise ValueError(f"LPIPS needs images of at least {MIN_SIZE} x {MIN_SIZE} pixels, got {list(a.shape[-2:])}")
        x = ((2 * a - 1) - self.shift) / self.scale
        y = ((2 * b - 1) - self.shift) / self.scale
        total = a.new_zeros(a.shape[0])
        for index, layer in enumerate(self.features):
            x, y = layer(x), layer(y)
            if index in self.heads:
                total = total + ((_unit(x) - _unit(y)) ** 2 * self.heads[index]).sum(1).mean((1, 2))
        return total


def _unit(x: Tensor, eps: float = 1e-10) -> Tensor:
    return x / (x.pow(2).sum(1, keepdim=True).sqrt() + eps)
