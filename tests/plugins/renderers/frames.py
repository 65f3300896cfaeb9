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
