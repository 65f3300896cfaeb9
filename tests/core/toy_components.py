"""Test-only components with strict ports, registered at run time (never installed)."""

from __future__ import annotations

from thkit.core import Accepts, Component, Frames, Landmarks, Params, Pose, Seq


class ToyLandmarkParams(Params):
    hidden: int = 16


class ToyLandmarks(Component):
    """Needs exactly 80-wide features (e.g. a mel with n_mels=80)."""

    kind = "conditioning"
    Params = ToyLandmarkParams
    inputs = {"features": Accepts(Seq, dim=80)}

    def outputs(self):
        return {"landmarks": Landmarks(68, 3, self.context.video_fps)}

    def build(self):
        import torch

        return torch.nn.Linear(80, self.params.hidden)


class ToyRenderer(Component):
    """Needs its audio code at the video rate; landmarks are optional."""

    kind = "renderer"
    inputs = {
        "audio": Accepts(Seq, fps="video"),
        "pose": Accepts(Pose),
        "landmarks": Accepts(Landmarks, dims=3, required=False),
    }

    def outputs(self):
        size = self.context.image_size
        return {"rgb": Frames(size, size, self.context.video_fps)}

    def build(self):
        import torch

        return torch.nn.Linear(self.input_ports["audio"].dim, 3)


TOYS = {"toy-landmarks": ToyLandmarks, "toy-renderer": ToyRenderer}
