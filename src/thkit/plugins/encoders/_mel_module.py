"""The torch side of the `mel` encoder (kept apart so that validation never imports torch)."""

from __future__ import annotations

from torch import Tensor, nn

from thkit.audio.mel import LogMel
from thkit.core.timebase import Timeline


class MelModule(nn.Module):
    def __init__(self, component) -> None:
        super().__init__()
        params = component.params
        sample_rate = component.input_ports["audio"].sample_rate
        self.fps = component.outputs()["features"].fps
        win = round(sample_rate * params.win_ms / 1000)
        self.mel = LogMel(sample_rate, params.n_mels, int(component._hop()), win, params.fmin, params.fmax)

    def forward(self, inputs: dict[str, Tensor], timeline: Timeline) -> dict[str, Tensor]:
        return {"features": self.mel(inputs["audio"], timeline.frames(self.fps))}
