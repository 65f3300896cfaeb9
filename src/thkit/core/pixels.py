"""The renderer contract: which pixels to render, and the camera they are seen through (imports torch).

Renderer modules (components of kind "renderer") are called as

    module(batch: PixelBatch, conditions: dict[str, Tensor]) -> dict[str, Tensor]

- `batch` names R pixels drawn from F frames (a few random rays of many frames while training, every
  pixel of one frame while rendering);
- `conditions[input_name]` is the renderer's input for the batch's F frames, first axis F (a `Seq`
  input gives [F, dim], `Pose` [F, 4, 4], `Landmarks` [F, n, dims]); an input fed by another
  renderer's `Frames` output gives that renderer's result at the same R pixels, [R, 4];
- the result holds `rgba`: [R, 4] colour premultiplied by alpha, in [0, 1], and may hold `depth` [R]
  and regulariser terms named `reg_<name>` (any shape) that losses of the same name read.

The final image is the last renderer's `rgba` composited over the dataset's background plate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor


@dataclass
class PixelBatch:
    """R pixels of F frames, with each frame's camera."""

    pixels: Float[Tensor, "R 2"]  # x, y in pixels; pixel (row i, col j) is centred at (j + 0.5, i + 0.5)
    slot: Int[Tensor, "R"]  # which of the F frames each pixel belongs to
    frame_ids: Int[Tensor, "F"]  # dataset frame index of each frame (per-frame codes); -1 for unseen frames
    camera_to_world: Float[Tensor, "F 4 4"]  # OpenGL axes, canonical head space (see thkit.data.layout)
    intrinsics: Float[Tensor, "3"]  # focal, cx, cy in pixels
    height: int
    width: int

    @property
    def n_rays(self) -> int:
        return self.pixels.shape[0]

    def to(self, device: torch.device | str) -> PixelBatch:
        return PixelBatch(
            self.pixels.to(device),
            self.slot.to(device),
            self.frame_ids.to(device),
            self.camera_to_world.to(device),
            self.intrinsics.to(device),
            self.height,
            self.width,
        )

    def rays(self) -> tuple[Float[Tensor, "R 3"], Float[Tensor, "R 3"]]:
        """World-space ray origins and unit directions of every pixel (pinhole camera, OpenGL axes)."""
        focal, cx, cy = self.intrinsics
        x = (self.pixels[:, 0] - cx) / focal
        y = -(self.pixels[:, 1] - cy) / focal  # image y grows downwards, camera y upwards
        directions_camera = torch.stack([x, y, -torch.ones_like(x)], dim=-1)
        if self.camera_to_world.shape[0] == 1:  # one frame (rendering): one matrix product, no per-pixel copy of its rotation
            directions = directions_camera @ self.camera_to_world[0, :3, :3].T
            origins = self.camera_to_world[0, :3, 3].expand(len(directions), 3)
        else:
            rotation = self.camera_to_world[self.slot, :3, :3]
            directions = torch.einsum("rij,rj->ri", rotation, directions_camera)
            origins = self.camera_to_world[self.slot, :3, 3]
        return origins, directions / directions.norm(dim=-1, keepdim=True)

    @staticmethod
    def full_frames(
        camera_to_world: Float[Tensor, "F 4 4"], intrinsics: Float[Tensor, "3"], height: int, width: int, frame_ids: Tensor | None = None
    ) -> PixelBatch:
        """Every pixel of F frames, row-major per frame."""
        n_frames = camera_to_world.shape[0]
        rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
        pixels = torch.stack([cols.flatten() + 0.5, rows.flatten() + 0.5], dim=-1).float().repeat(n_frames, 1)
        slot = torch.arange(n_frames).repeat_interleave(height * width)
        ids = frame_ids if frame_ids is not None else torch.full((n_frames,), -1, dtype=torch.long)
        return PixelBatch(pixels, slot, ids, camera_to_world.float(), intrinsics.float(), height, width)
