"""Torch modules for test_testing.py's components (kept apart as the component contract asks)."""

import torch
from torch import nn


class FineModule(nn.Module):
    def forward(self, inputs, timeline):
        n = timeline.frames(25)
        return {"features": inputs["audio"][: n * 2].reshape(-1, 2)[:n] if n else torch.zeros(0, 2)}


class OffByOneModule(nn.Module):
    def forward(self, inputs, timeline):
        return {"features": torch.zeros(timeline.frames(25) - 1, 2)}


class RandomModule(nn.Module):
    def forward(self, inputs, timeline):
        return {"features": torch.rand(timeline.frames(25), 2)}
