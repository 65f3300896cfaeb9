"""Inception-v3 pool features (2048-d) for FID, on torchvision's network.

Two weight files are usable, and they need slightly different networks:

- `pt_inception-2015-12-05-*.pth` (pytorch-fid and torch-fidelity's port of the TensorFlow graph
  that defined FID; 1008 classes): the numbers papers report. That graph pools differently from
  torchvision's Inception in three places, so those blocks are rebuilt here: the average pools
  beside the 35x35, 17x17 and first 8x8 mixed blocks ignore padding (`count_include_pad=False`),
  and the last block max-pools instead;
- torchvision's `inception_v3_google-*.pth` (1000 classes, ImageNet): torchvision's own blocks.
  FID from it is self-consistent but not comparable with published FID.

Input, as pytorch-fid feeds it: RGB scaled to [0, 1], resized to 299 x 299 (bilinear, no
antialiasing), mapped to [-1, 1]. Both weight files expect that range.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch.nn.functional as F
from jaxtyping import Float, UInt8
from torch import Tensor, nn
from torchvision.models.inception import BasicConv2d, Inception3, InceptionA, InceptionAux, InceptionB, InceptionC, InceptionD, InceptionE

SIZE = 299
FEATURES = 2048
Variant = Literal["tensorflow", "torchvision"]


class _TensorflowPool:
    """Recompute a block's pool branch with the TensorFlow graph's pooling (torchvision's runs too
    and is discarded: about 5% of the network's work, for not restating the blocks' forwards)."""

    branch_pool: nn.Module

    def _pool(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)

    def _forward(self, x: Tensor) -> list[Tensor]:
        outputs = super()._forward(x)  # type: ignore[misc]
        outputs[-1] = self.branch_pool(self._pool(x))
        return outputs


class _BlockA(_TensorflowPool, InceptionA):
    pass


class _BlockC(_TensorflowPool, InceptionC):
    pass


class _BlockE(_TensorflowPool, InceptionE):
    pass


class _LastBlockE(_BlockE):
    def _pool(self, x: Tensor) -> Tensor:
        return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


def inception(variant: Variant) -> Inception3:
    """The network without its classifier (`fc` is the identity): its output is the pool features."""
    if variant == "tensorflow":
        blocks = [BasicConv2d, _BlockA, InceptionB, _BlockC, InceptionD, _BlockE, InceptionAux]
    else:
        blocks = [BasicConv2d, InceptionA, InceptionB, InceptionC, InceptionD, InceptionE, InceptionAux]
    net = Inception3(aux_logits=False, init_weights=False, inception_blocks=blocks)
    if variant == "tensorflow":
        net.Mixed_7c = _LastBlockE(2048)
    net.fc = nn.Identity()
    return net


def backbone_state(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A weight file's tensors without the classifier and the auxiliary head, which FID never uses."""
    return {name: value for name, value in state.items() if not name.startswith(("fc.", "AuxLogits."))}


class InceptionFeatures(nn.Module):
    """uint8 RGB images [N, 3, H, W] -> [N, 2048] pool features; a `feature` module for torchmetrics' FID."""

    num_features = FEATURES

    def __init__(self, net: Inception3) -> None:
        super().__init__()
        self.net = net.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> InceptionFeatures:
        return super().train(False)  # always in eval mode: batch norm uses its running statistics

    def forward(self, images: UInt8[Tensor, "batch 3 height width"]) -> Float[Tensor, "batch 2048"]:
        x = images.float() / 255
        x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
        return self.net(2 * x - 1)
