"""What drives each frame of a new video besides the audio: head pose, blink, per-frame code (numpy only).

A trained run knows poses and blinks only for its training frames, and new audio is usually longer
or shorter than them. As the peer systems do (ER-NeRF's `mirror_index`), the training sequence is
replayed back and forth: source frames 0, 1, ..., N-1, N-2, ..., 0, 1, ... so the head never jumps
from the last pose back to the first. Every per-frame graph input the data provides (`$pose`,
`$blink`, `$mouth`, `$landmarks`, `$landmarks2d`) is replayed at the same indices, so blinks stay
where they were in the replayed frames.

`--poses FILE` replaces the poses alone: a `.npy` of [F, 4, 4] float camera-to-world matrices in the
dataset's canonical head space (OpenGL axes, as `thkit.data.layout` documents for `poses.npy`), one
per video frame of the audio (F frames, or more: the extra ones are ignored).

Per-frame latent codes. A renderer with a per-frame code table (NeRF-W's appearance codes) looks the
code up by `PixelBatch.frame_ids`. A replayed frame keeps its own training frame's id, so each output
frame gets exactly the appearance (lighting, compression) of the frame whose pose it shows, which
keeps pose and appearance consistent. Frames that are not training frames (validation frames, poses
from a file) get -1: the renderer's fallback, the mean code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thkit.core.errors import ThkitError

# Graph inputs replayed from the dataset, and the dataset array each comes from.
REPLAYED = {"pose": "poses", "blink": "blink", "mouth": "mouth", "landmarks": "landmarks3d", "landmarks2d": "landmarks2d"}
UNSEEN = -1  # frame id of a frame whose per-frame code was never trained


def mirror_indices(n_out: int, n_source: int) -> np.ndarray:
    """[n_out] indices into a sequence of n_source frames, played forwards then backwards, repeatedly.

    0, 1, ..., n-1, n-2, ..., 1, 0, 1, ...: the turning frames are not repeated (the period is 2n - 2).
    """
    if n_source < 1:
        raise ValueError("cannot replay an empty sequence")
    if n_source == 1:
        return np.zeros(n_out, dtype=np.int64)
    position = np.arange(n_out, dtype=np.int64) % (2 * n_source - 2)
    return np.where(position < n_source, position, 2 * n_source - 2 - position)


@dataclass(frozen=True)
class Drive:
    """Per-frame inputs of F output frames: dataset rows to replay, their frame ids, optional poses."""

    rows: np.ndarray  # [F] dataset frame whose pose, blink, ... each output frame shows
    frame_ids: np.ndarray  # [F] per-frame code ids: the row when it is a training frame, else -1
    poses: np.ndarray | None = None  # [F, 4, 4] camera-to-world replacing the replayed poses

    @property
    def n_frames(self) -> int:
        return int(self.rows.shape[0])

    @classmethod
    def replay(cls, n_out: int, source: range, train: range, poses: np.ndarray | None = None) -> Drive:
        """Frames `source` of the dataset mirrored over n_out frames; ids kept for `train` frames."""
        rows = np.asarray(source, dtype=np.int64)[mirror_indices(n_out, len(source))]
        in_train = (rows >= train.start) & (rows < train.stop)
        ids = np.where(in_train & (poses is None), rows, UNSEEN)
        return cls(rows, ids.astype(np.int64), None if poses is None else poses[:n_out])


def load_poses(path: str | Path, n_frames: int) -> np.ndarray:
    """[n_frames, 4, 4] float32 camera-to-world from a .npy file, checked (see the module docstring)."""
    path = Path(path)
    hint = "save a float array of shape [frames, 4, 4] (camera-to-world, canonical head space) with numpy.save"
    if not path.is_file():
        raise ThkitError(f"--poses {path}: no such file", hint=hint)
    try:
        poses = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ThkitError(f"--poses {path}: not a readable .npy file ({error})", hint=hint) from None
    if poses.ndim != 3 or poses.shape[1:] != (4, 4):
        raise ThkitError(f"--poses {path}: shape {list(poses.shape)}, expected [frames, 4, 4]", hint=hint)
    if not np.issubdtype(poses.dtype, np.floating) and not np.issubdtype(poses.dtype, np.integer):
        raise ThkitError(f"--poses {path}: dtype {poses.dtype}, expected floats", hint=hint)
    if poses.shape[0] < n_frames:
        raise ThkitError(
            f"--poses {path}: {poses.shape[0]} poses for {n_frames} video frames of audio",
            hint=f"give at least {n_frames} poses, one per video frame, as [frames, 4, 4] (extra poses are ignored)",
        )
    poses = poses[:n_frames].astype(np.float32)
    if not np.isfinite(poses).all():
        raise ThkitError(f"--poses {path}: holds NaN or infinite values", hint=hint)
    if not np.allclose(poses[:, 3], [0, 0, 0, 1], atol=1e-4):
        raise ThkitError(f"--poses {path}: the last row of every matrix must be [0, 0, 0, 1]", hint=hint)
    return poses
