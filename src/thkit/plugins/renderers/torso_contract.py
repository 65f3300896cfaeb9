"""What every torso renderer is: the head's rgba and the pose in, head-over-torso rgba out, full frames.

`torso-2d` and `styleunet-torso` differ in how they draw the torso, not in how they plug into a
graph, so the ports are declared once here. Imports no torch.
"""

from __future__ import annotations

from thkit.core import Accepts, Component, Frames, Pose


class TorsoRenderer(Component):
    """Base of torso renderers: subclasses give `Params` and `build()`."""

    kind = "renderer"
    inputs = {
        "head": Accepts(Frames, doc="the head renderer's rgba at the same pixels (premultiplied)"),
        "pose": Accepts(Pose, doc="camera-to-world per frame in head space"),
    }

    def outputs(self) -> dict[str, Frames]:
        size = self.context.image_size
        return {"rgba": Frames(size, size, self.context.video_fps)}
