"""One frame of a dataset as flat tensors, for renderer tests."""

import numpy as np
import torch

from thkit.core.pixels import PixelBatch
from thkit.data.layout import Dataset


class Frame:
    """One frame of a dataset as tensors: camera, image, background and masks, flattened row-major."""

    def __init__(self, dataset: Dataset, index: int) -> None:
        meta = dataset.meta
        self.index = index
        self.size = meta.height
        self.pose = torch.tensor(np.asarray(dataset.array("poses")[index : index + 1]))
        self.intrinsics = torch.tensor([meta.intrinsics.focal, meta.intrinsics.cx, meta.intrinsics.cy])
        self.rgb = torch.tensor(dataset.frame(index) / 255.0, dtype=torch.float32).reshape(-1, 3)
        self.background = torch.tensor(dataset.background / 255.0, dtype=torch.float32).reshape(-1, 3)
        self.labels = torch.tensor(dataset.mask(index)).reshape(-1)

    def full(self) -> PixelBatch:
        return PixelBatch.full_frames(self.pose, self.intrinsics, self.size, self.size, torch.tensor([self.index]))

    def pick(self, rays: torch.Tensor) -> PixelBatch:
        full = self.full()
        return PixelBatch(full.pixels[rays], full.slot[rays], full.frame_ids, full.camera_to_world, full.intrinsics, self.size, self.size)


def psnr(image: torch.Tensor, target: torch.Tensor) -> float:
    return float(-10 * torch.log10(((image - target) ** 2).mean()))


def occupy_a_central_block(module: torch.nn.Module) -> None:
    """Mark a block of cells at the centre of the occupancy grid dense, and the grid ready (as after training)."""
    grid = module.occupancy
    g = grid.resolution
    with torch.no_grad():
        grid.density.zero_()
        grid.density[g // 2 - 4 : g // 2 + 4, g // 2 - 4 : g // 2 + 4, g // 2 - 4 : g // 2 + 4] = 1e3
        grid.updates.fill_(1)


def counting_field(module: torch.nn.Module) -> list[int]:
    """Points evaluated by each call of `module.field` from now on."""
    counts: list[int] = []
    field = module.field

    def counted(positions: torch.Tensor, *args):
        counts.append(positions.shape[0] * positions.shape[1])
        return field(positions, *args)

    module.field = counted
    return counts
