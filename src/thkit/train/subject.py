"""One subject's dataset as training tensors, and the pixel batches a training step samples from it.

Sampling follows ER-NeRF. A step draws F frames of the train split (with replacement) and, per
frame, either
- scattered rays: R / F pixels, a share (`face_fraction`, default half) inside the frame's face box
  grown by `face_margin` of its size on each side, the rest anywhere in the frame; or
- one P x P patch (the lips stage: losses that compare structure, such as lpips and ssim) whose
  centre is drawn uniformly inside the frame's lip box, moved inwards where it would leave the frame.

Every draw comes from one `torch.Generator`, so a run's batches are a function of its seed and of
the generator state a checkpoint saves.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from thkit.core.pixels import PixelBatch
from thkit.data.layout import TORSO, Dataset

CACHED_FRAMES = 256  # decoded frames kept in memory (the train split of a small subject fits whole)


@dataclass
class RayBatch:
    """Pixels to render, with what the dataset knows about each."""

    pixels: PixelBatch
    target: Float[Tensor, "R 3"]  # ground-truth colour in [0, 1]
    labels: Int[Tensor, "R"]  # mask label (0 background, 1 torso, 2 head)
    plate: Float[Tensor, "R 3"]  # background plate colour
    patch: int | None = None  # P when the rays are F row-major P x P patches, one per frame

    def plate_with_torso(self) -> Tensor:
        """The plate with the ground-truth torso pasted in: what a head trains over while no torso
        renderer is drawn (ER-NeRF's head stage composites over background + real torso)."""
        return torch.where((self.labels == TORSO)[:, None], self.target, self.plate)

    def rows(self, start: int, stop: int) -> RayBatch:
        """Rays start..stop (of one frame's batch: whole-frame rendering in chunks)."""
        pixels = self.pixels
        part = PixelBatch(
            pixels.pixels[start:stop], pixels.slot[start:stop], pixels.frame_ids, pixels.camera_to_world, pixels.intrinsics, pixels.height, pixels.width
        )
        return RayBatch(part, self.target[start:stop], self.labels[start:stop], self.plate[start:stop])


class Subject:
    """A dataset's arrays as tensors on `device`; frames and masks decoded on demand and cached."""

    def __init__(self, dataset: Dataset, device: torch.device | str = "cpu") -> None:
        self.dataset = dataset
        self.device = torch.device(device)
        meta = dataset.meta
        self.height, self.width, self.n_frames = meta.height, meta.width, meta.n_frames
        self.fps = meta.fps
        self.train_frames, self.val_frames = meta.train_frames, meta.val_frames
        self.intrinsics = torch.tensor([meta.intrinsics.focal, meta.intrinsics.cx, meta.intrinsics.cy], dtype=torch.float32)
        self.poses = self.array("poses")
        self.face_boxes, self.lip_boxes = self.array("face_boxes"), self.array("lip_boxes")
        self.background = torch.from_numpy(np.array(dataset.background)).float().div(255)  # [H, W, 3]
        self._images: OrderedDict[int, tuple[Tensor, Tensor]] = OrderedDict()

    def array(self, name: str) -> Tensor:
        return torch.from_numpy(np.array(self.dataset.array(name), dtype=np.float32))

    def audio(self) -> Tensor:
        return torch.from_numpy(self.dataset.audio())

    def graph_inputs(self, with_frames: bool = False) -> dict[str, Tensor]:
        """The whole clip's graph inputs (`$name` -> tensor, on the device); `$frame` only when asked."""
        inputs = {
            "audio": self.audio(),
            "pose": self.poses,
            "landmarks": self.array("landmarks3d"),
            "landmarks2d": self.array("landmarks2d"),
            "blink": self.array("blink")[:, None],
            "mouth": self.array("mouth")[:, None],
        }
        if with_frames:
            inputs["frame"] = torch.stack([self.image(index)[0] for index in range(self.n_frames)]).float().div(255)
        return {name: tensor.to(self.device) for name, tensor in inputs.items()}

    def image(self, index: int) -> tuple[Tensor, Tensor]:
        """Frame `index` as uint8 [H, W, 3] and its mask labels uint8 [H, W], on the CPU."""
        if index in self._images:
            self._images.move_to_end(index)
        else:
            self._images[index] = (torch.from_numpy(np.array(self.dataset.frame(index))), torch.from_numpy(np.array(self.dataset.mask(index))))
            if len(self._images) > CACHED_FRAMES:
                self._images.popitem(last=False)
        return self._images[index]

    def batch(self, frame_ids: Tensor, rows: Tensor, cols: Tensor, slot: Tensor, patch: int | None = None) -> RayBatch:
        """The pixels (rows[i], cols[i]) of frames frame_ids[slot[i]], with their ground truth."""
        images = [self.image(int(index)) for index in frame_ids]
        frames = torch.stack([image for image, _ in images])
        masks = torch.stack([mask for _, mask in images])
        pixels = PixelBatch(
            pixels=torch.stack([cols, rows], dim=-1).float() + 0.5,
            slot=slot,
            frame_ids=frame_ids,
            camera_to_world=self.poses[frame_ids],
            intrinsics=self.intrinsics,
            height=self.height,
            width=self.width,
        )
        target = frames[slot, rows, cols].float().div(255)
        batch = RayBatch(pixels, target, masks[slot, rows, cols].long(), self.background[rows, cols], patch)
        return _to(batch, self.device)

    def full_frame(self, index: int) -> RayBatch:
        """Every pixel of frame `index`, row-major."""
        rows, cols = torch.meshgrid(torch.arange(self.height), torch.arange(self.width), indexing="ij")
        return self.batch(torch.tensor([index]), rows.flatten(), cols.flatten(), torch.zeros(self.height * self.width, dtype=torch.long))


class RaySampler:
    """Draws training batches from a subject's train split (see the module docstring)."""

    def __init__(
        self, subject: Subject, generator: torch.Generator, *, frames: int, rays: int, patch: int, face_fraction: float, face_margin: float
    ) -> None:
        self.subject = subject
        self.generator = generator
        self.frames = frames
        self.rays_per_frame = max(1, rays // frames)
        self.patch = min(patch, subject.height, subject.width)
        self.face_fraction = face_fraction
        self.face_margin = face_margin

    def sample(self, patches: bool = False) -> RayBatch:
        train = self.subject.train_frames
        frame_ids = train.start + torch.randint(len(train), (self.frames,), generator=self.generator)
        parts = [self._patch(int(index)) if patches else self._scattered(int(index)) for index in frame_ids]
        rows = torch.cat([part[0] for part in parts])
        cols = torch.cat([part[1] for part in parts])
        slot = torch.arange(self.frames).repeat_interleave(torch.tensor([part[0].numel() for part in parts]))
        return self.subject.batch(frame_ids, rows, cols, slot, self.patch if patches else None)

    def _scattered(self, index: int) -> tuple[Tensor, Tensor]:
        height, width = self.subject.height, self.subject.width
        inside = round(self.rays_per_frame * self.face_fraction)
        x0, y0, x1, y1 = self.subject.face_boxes[index].tolist()
        grow_x, grow_y = (x1 - x0) * self.face_margin, (y1 - y0) * self.face_margin
        face = self._uniform((x0 - grow_x, y0 - grow_y, x1 + grow_x, y1 + grow_y), inside)
        anywhere = self._uniform((0, 0, width, height), self.rays_per_frame - inside)
        return torch.cat([face[0], anywhere[0]]), torch.cat([face[1], anywhere[1]])

    def _uniform(self, box: tuple[float, float, float, float], count: int) -> tuple[Tensor, Tensor]:
        """`count` pixels uniformly in the whole pixels that `box` (x0, y0, x1, y1) touches, inside the frame."""
        height, width = self.subject.height, self.subject.width
        c0, c1 = _span(box[0], box[2], width)
        r0, r1 = _span(box[1], box[3], height)
        draw = torch.rand(count, 2, generator=self.generator)
        rows = r0 + (draw[:, 0] * (r1 - r0)).long().clamp(max=r1 - r0 - 1)
        cols = c0 + (draw[:, 1] * (c1 - c0)).long().clamp(max=c1 - c0 - 1)
        return rows, cols

    def _patch(self, index: int) -> tuple[Tensor, Tensor]:
        size, height, width = self.patch, self.subject.height, self.subject.width
        x0, y0, x1, y1 = self.subject.lip_boxes[index].tolist()
        draw = torch.rand(2, generator=self.generator).tolist()
        top = min(max(round(y0 + draw[0] * (y1 - y0) - size / 2), 0), height - size)
        left = min(max(round(x0 + draw[1] * (x1 - x0) - size / 2), 0), width - size)
        rows, cols = torch.meshgrid(torch.arange(top, top + size), torch.arange(left, left + size), indexing="ij")
        return rows.flatten(), cols.flatten()


def _span(low: float, high: float, limit: int) -> tuple[int, int]:
    """Whole pixels [first, stop) touched by [low, high), clipped to [0, limit); the whole range when empty."""
    first, stop = max(int(np.floor(low)), 0), min(int(np.ceil(high)), limit)
    return (first, stop) if stop > first else (0, limit)


def _to(batch: RayBatch, device: torch.device) -> RayBatch:
    if device.type == "cpu":
        return batch
    return RayBatch(batch.pixels.to(device), batch.target.to(device), batch.labels.to(device), batch.plate.to(device), batch.patch)
