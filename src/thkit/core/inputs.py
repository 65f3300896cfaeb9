"""The graph inputs a spec may reference as `$name`: what the data layer provides for every clip."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

from thkit.core.component import GraphContext
from thkit.core.ports import Audio, Frames, Landmarks, Pose, Port, Seq
from thkit.core.spec import DataSpec
from thkit.core.timebase import as_rate


def context_for(data: DataSpec) -> GraphContext:
    """The graph context of a spec's data: from the dataset's own dataset.json when it exists.

    Only the documented keys fps, height and n_frames are read (see thkit.data.layout), so that
    validation stays fast and torch-free. A synthetic subject's size is known from its params.
    """
    fps, size, n_frames = data.fps, data.image_size, 0
    if data.synthetic is not None:
        n_frames = int(Fraction(str(data.synthetic.seconds)) * fps)
    manifest = Path(data.dataset) / "dataset.json" if data.dataset is not None else None
    if manifest is not None and manifest.is_file():
        try:
            meta = json.loads(manifest.read_text())
            fps, n_frames = as_rate(meta["fps"]), int(meta["n_frames"])
            size = data.size or int(meta["height"])
        except (ValueError, KeyError, TypeError):
            pass  # unreadable metadata is reported when the dataset is opened
    return GraphContext(video_fps=fps, image_size=size, n_frames=n_frames)


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
