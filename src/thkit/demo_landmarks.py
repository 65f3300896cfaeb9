"""`thkit demo`'s measures of the audio -> landmarks half of a landmark-driven spec.

The decoupled path joins audio and image only through 3D landmarks, so the landmarks predicted for
the validation frames (driven by their own audio, poses and blinks) can be compared with the tracked
ones directly:

- mouth error: the predicted landmarks projected into the frames with the validation poses and the
  dataset's intrinsics (`thkit.data.layout`'s camera conventions), against the tracked
  `landmarks2d` on the mouth (points 48-67): mean distance in pixels at the dataset's size. Beside
  it, the same error of the neutral face (the mouth held still: what predicting nothing scores) and
  of the tracked 3D landmarks themselves (the tracking's own 2D/3D disagreement: the floor);
- mouth correlation: the predicted mouth opening (inner-lip gap over face height, the dataset's own
  `mouth` measure) against the dataset's `mouth`, and, on the held-out sentence, against the
  generator's mouth; its amplitude ratio (standard deviations) says whether the motion is damped.

The other half, the renderer driven by tracked landmarks, is measured by `thkit.demo` itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from thkit.core.graph import Graph, Ref
from thkit.data.layout import Intrinsics
from thkit.eval.lipsync import correlation

if TYPE_CHECKING:
    from thkit.demo import Clip
    from thkit.render.pipeline import LoadedRun

MOUTH_POINTS = slice(48, 68)


def predicted_landmarks(graph: Graph) -> list[Ref]:
    """The outputs of `graph`'s conditioning nodes comparable with the tracked 3D landmarks (a
    landmark-transformer's `landmarks`)."""
    from thkit.train.losses import landmark_outputs

    return [Ref(name, port) for name, node in graph.nodes.items() if node.spec.kind == "conditioning" for port in landmark_outputs(graph, name)]


def landmark_metrics(loaded: LoadedRun, ref: Ref, val: Clip, held_out: Clip, held_out_mouth: np.ndarray) -> dict[str, Any]:
    """How well `ref`'s landmarks, predicted from the audio, follow the tracked ones on the validation
    clip, and the generator's mouth (`held_out_mouth`) on the held-out one (module docstring)."""
    from thkit.data.preprocess.signals import mouth

    dataset, frames = loaded.dataset, loaded.dataset.meta.val_frames
    rows = slice(frames.start, frames.stop)
    poses = np.asarray(dataset.array("poses")[rows], dtype=np.float64)
    tracked2d = np.asarray(dataset.array("landmarks2d")[rows], dtype=np.float64)
    tracked3d = np.asarray(dataset.array("landmarks3d")[rows], dtype=np.float64)
    true_mouth = np.asarray(dataset.array("mouth")[rows], dtype=np.float64)
    intrinsics = dataset.meta.intrinsics
    predicted, neutral = _predict(loaded, ref, val), _predict(loaded, ref, val, edits={"mouth_scale": 0.0})
    opening = mouth(predicted).astype(np.float64)

    def error(points: np.ndarray) -> float:
        return mouth_error_px(project(points, poses, intrinsics), tracked2d)

    return {
        "node": ref.node,
        "frames": len(frames),
        "mouth_error_px": error(predicted),
        "mouth_error_px_neutral": error(neutral),
        "mouth_error_px_tracked_3d": error(tracked3d),
        "mouth_correlation": correlation(opening, true_mouth),
        "mouth_amplitude_ratio": float(np.std(opening) / np.std(true_mouth)) if np.std(true_mouth) > 0 else None,
        "held_out_mouth_correlation": correlation(mouth(_predict(loaded, ref, held_out)).astype(np.float64), held_out_mouth),
    }


def _predict(loaded: LoadedRun, ref: Ref, clip: Clip, edits: dict[str, float] | None = None) -> np.ndarray:
    """[frames, 68, 3] landmarks `ref` outputs for the clip (edited by `edits`), in canonical head space."""
    from thkit.render.pipeline import frame_values

    values = frame_values(loaded, clip.audio, clip.timeline, clip.drive, edits=edits)
    return values[ref].cpu().numpy().astype(np.float64)


def project(points: np.ndarray, poses: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """[F, P, 3] head-space points seen by [F, 4, 4] camera-to-world poses (OpenGL axes) -> [F, P, 2] pixels
    (x right, y down, pixel centres at half-integers), as the dataset's `landmarks2d`."""
    rotation, origin = poses[:, :3, :3], poses[:, :3, 3]
    camera = np.einsum("fji,fpj->fpi", rotation, points - origin[:, None])  # rotation^T (x - origin)
    depth = -camera[..., 2]  # the camera looks along its -z
    x = intrinsics.cx + intrinsics.focal * camera[..., 0] / depth
    y = intrinsics.cy - intrinsics.focal * camera[..., 1] / depth
    return np.stack([x, y], axis=-1)


def mouth_error_px(projected: np.ndarray, tracked: np.ndarray) -> float:
    """Mean distance in pixels between [F, 68, 2] landmark sets over the mouth points (48-67)."""
    return float(np.linalg.norm(projected[:, MOUTH_POINTS] - tracked[:, MOUTH_POINTS], axis=-1).mean())
