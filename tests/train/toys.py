"""Small test-only components for training: a fusion, a landmark predictor and two renderers.

The renderers follow the contract of `thkit.core.pixels`: a per-pixel MLP of (pixel position,
a learned plane sampled there, a per-frame code, the frame's conditions) -> premultiplied rgba.
`PixelField.seen`, when set to a list, records each call's pixel batch and conditions.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thkit.core import Accepts, Component, Frames, Landmarks, Params, Pose, Seq
from thkit.core.align import pool_to_frames
from thkit.core.registry import Registry
from thkit.plugins.encoders.mel import MelEncoder
from thkit.plugins.encoders.sync import SyncEncoder

FREQUENCIES = 4


class ToyFusionParams(Params):
    dim: int = 8
    dropout: float = 0.0


class ToyFusion(Component):
    """Features pooled onto video frames, then a linear layer: Seq(dim, video fps)."""

    kind = "fusion"
    Params = ToyFusionParams
    inputs = {"features": Accepts(Seq)}

    def outputs(self):
        return {"code": Seq(self.params.dim, self.context.video_fps)}

    def build(self):
        return _Fusion(self.input_ports["features"], self.context.video_fps, self.params)


class _Fusion(nn.Module):
    def __init__(self, port, video_fps, params) -> None:
        super().__init__()
        self.in_fps, self.video_fps = port.fps, video_fps
        self.linear = nn.Linear(port.dim, params.dim)
        self.dropout = nn.Dropout(params.dropout)

    def forward(self, inputs, timeline):
        pooled = pool_to_frames(inputs["features"], self.in_fps, self.video_fps, timeline.frames(self.video_fps))
        return {"code": torch.tanh(self.dropout(self.linear(pooled)))}


class ToyLandmarks(Component):
    """Features -> 68 3D landmarks per video frame."""

    kind = "conditioning"
    inputs = {"features": Accepts(Seq)}

    def outputs(self):
        return {"landmarks": Landmarks(68, 3, self.context.video_fps)}

    def build(self):
        return _Landmarks(self.input_ports["features"], self.context.video_fps)


class _Landmarks(nn.Module):
    def __init__(self, port, video_fps) -> None:
        super().__init__()
        self.in_fps, self.video_fps = port.fps, video_fps
        self.linear = nn.Linear(port.dim, 68 * 3)

    def forward(self, inputs, timeline):
        pooled = pool_to_frames(inputs["features"], self.in_fps, self.video_fps, timeline.frames(self.video_fps))
        return {"landmarks": self.linear(pooled).reshape(-1, 68, 3)}


class FieldParams(Params):
    hidden: int = 32
    plane: int = 8  # plane resolution


class PixelField(Component):
    """A per-pixel MLP renderer; every condition is optional."""

    kind = "renderer"
    Params = FieldParams
    inputs = {
        "audio": Accepts(Seq, fps="video", required=False),
        "pose": Accepts(Pose, required=False),
        "landmarks": Accepts(Landmarks, dims=3, required=False),
    }
    seen: ClassVar[list | None] = None

    def outputs(self):
        size = self.context.image_size
        return {"image": Frames(size, size, self.context.video_fps)}

    def build(self):
        audio = self.input_ports.get("audio")
        width = (audio.dim if audio else 0) + (16 if "pose" in self.input_ports else 0) + (3 if "landmarks" in self.input_ports else 0)
        return _Field(self.params, max(self.context.n_frames, 1), width, under=False)


class OverlayParams(FieldParams):
    pass


class Overlay(Component):
    """A renderer that draws over another renderer's image (a torso under/over a head, say)."""

    kind = "renderer"
    Params = OverlayParams
    inputs = {"under": Accepts(Frames), "pose": Accepts(Pose, required=False)}

    def outputs(self):
        size = self.context.image_size
        return {"image": Frames(size, size, self.context.video_fps)}

    def build(self):
        return _Field(self.params, max(self.context.n_frames, 1), 16 if "pose" in self.input_ports else 0, under=True)


class _Field(nn.Module):
    def __init__(self, params: FieldParams, n_frames: int, condition_width: int, under: bool) -> None:
        super().__init__()
        self.under = under
        self.plane = nn.Parameter(torch.zeros(1, 4, params.plane, params.plane))
        self.codes = nn.Embedding(n_frames, 4)
        width = 4 * FREQUENCIES + 4 + 4 + condition_width
        self.mlp = nn.Sequential(nn.Linear(width, params.hidden), nn.ReLU(), nn.Linear(params.hidden, 5))

    def forward(self, batch, conditions: dict[str, Tensor]) -> dict[str, Tensor]:
        if PixelField.seen is not None and not self.under:
            PixelField.seen.append((batch, {name: value.detach().clone() for name, value in conditions.items()}))
        position = torch.stack([batch.pixels[:, 0] / batch.width, batch.pixels[:, 1] / batch.height], dim=-1) * 2 - 1
        scaled = position[:, :, None] * (2.0 ** torch.arange(FREQUENCIES, device=position.device)) * torch.pi
        encoded = torch.cat([scaled.sin().flatten(1), scaled.cos().flatten(1)], dim=-1)
        plane = F.grid_sample(self.plane, position[None, :, None, :], align_corners=False)[0, :, :, 0].T
        code = self.codes(batch.frame_ids.clamp(min=0))[batch.slot]
        parts = [encoded, plane, code]
        for name in ("audio", "landmarks", "pose"):
            if name in conditions:
                parts.append(_per_frame(name, conditions[name])[batch.slot])
        out = self.mlp(torch.cat(parts, dim=-1))
        alpha = torch.sigmoid(out[:, 3:4])
        rgba = torch.cat([torch.sigmoid(out[:, :3]) * alpha, alpha], dim=-1)
        if self.under:
            rgba = rgba + (1 - alpha) * conditions["under"]
        return {"rgba": rgba, "reg_ambient": torch.tanh(out[:, 4])}


def _per_frame(name: str, value: Tensor) -> Tensor:
    if name == "landmarks":
        return value.mean(dim=1)  # the landmarks' centroid: enough to depend on them
    return value.flatten(1)


def toy_registry() -> Registry:
    registry = Registry()
    registry.register(MelEncoder, "mel", "thkit")
    registry.register(SyncEncoder, "sync", "thkit")
    for component, name in ((ToyFusion, "toy-fusion"), (ToyLandmarks, "toy-landmarks"), (PixelField, "pixel-field"), (Overlay, "overlay")):
        registry.register(component, name, "tests")
    return registry
