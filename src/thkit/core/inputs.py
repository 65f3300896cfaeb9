"""The graph inputs a spec may reference as `$name`: what the data layer provides for every clip."""

from __future__ import annotations

from thkit.core.component import GraphContext
from thkit.core.ports import Audio, Frames, Landmarks, Pose, Port, Seq


def graph_inputs(context: GraphContext) -> dict[str, Port]:
    """`$name` -> port, sized by the data's frame rate and image size."""
    fps = context.video_fps
    return {
        "audio": Audio(context.sample_rate),
        "pose": Pose(fps),
        "frame": Frames(context.image_size, context.image_size, fps),
        "landmarks": Landmarks(68, 3, fps),  # tracked 3D landmarks in canonical head space
        "landmarks2d": Landmarks(68, 2, fps),  # tracked image-space landmarks, pixels
        "blink": Seq(1, fps),  # eye closure in [0, 1]
        "mouth": Seq(1, fps),  # mouth opening, normalised by face size
    }
