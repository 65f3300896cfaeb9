"""The thkit dataset folder: one documented format for preprocessed, imported and synthetic subjects.

```
DATASET/
  dataset.json        metadata (below); written last, so its presence means the dataset is complete
  audio.wav           16 kHz mono 24-bit speech, exactly the video's length (frames x 640 samples at 25 fps)
  audio.txt           optional: what audio.wav says (the source video's sidecar transcript, or the synthetic
                      subject's text); encoders that use words (`phones`) force-align it instead of guessing
  background.png      the background plate, H x W RGB
  frames/000000.jpg   RGB frames (JPEG quality 95), one per video frame
  masks/000000.png    uint8 label maps: 0 background, 1 torso (and neck), 2 head (face, hair, ears)
  poses.npy           [N, 4, 4] float32 camera-to-world in canonical head space (OpenGL axes)
  landmarks2d.npy     [N, 68, 2] float32 image pixels (x right, y down), iBUG 68-point order
  landmarks3d.npy     [N, 68, 3] float32 canonical head space (expression moves them, pose does not)
  blink.npy           [N] float32 eye closure, 0 open .. 1 closed
  mouth.npy           [N] float32 inner-lip opening divided by the face's height (landmarks 27 to 8)
  face_boxes.npy      [N, 4] float32 x0, y0, x1, y1 pixels
  lip_boxes.npy       [N, 4] float32 x0, y0, x1, y1 pixels
  ground_truth/       synthetic subjects only: the same arrays as generated, before any tracking
```

Canonical head space: origin between the ears at eye height, x to the image's right when the
subject faces the camera, y up, z out of the face towards the camera; unit 1 dm (the outer eye
corners are about 0.9 apart). A camera-to-world pose uses OpenGL axes (the camera looks along its
-z, y up), as nerfstudio's `Cameras` expects; pixels follow the pinhole `intrinsics` (focal, cx, cy).

Pixel (row i, column j) is centred at x = j + 1/2, y = i + 1/2, as in nerfstudio (dlib's and OpenCV's
integer coordinates are 0.5 px smaller). Frame i shows the subject at time (i + 1/2) / fps. Face and
lip boxes bound landmarks 0-67 and 48-67; mouth opening is measured on landmarks3d, so head pose
does not change it.

Frames, masks and arrays are read lazily (images on demand, arrays memory-mapped), so a 10-minute
512x512 dataset never needs all its frames in RAM.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from thkit.core.errors import ThkitError
from thkit.core.timebase import as_rate, format_rate

LAYOUT_VERSION = 1
SAMPLE_RATE = 16000
VAL_FRACTION_DENOMINATOR = 11  # the last 1/11 of frames is held out, as the peer systems do
HEAD, TORSO, BACKGROUND = 2, 1, 0

# name -> per-frame shape after the frame axis; every array has N rows.
ARRAYS: dict[str, tuple[int, ...]] = {
    "poses": (4, 4),
    "landmarks2d": (68, 2),
    "landmarks3d": (68, 3),
    "blink": (),
    "mouth": (),
    "face_boxes": (4,),
    "lip_boxes": (4,),
}


@dataclass
class Intrinsics:
    focal: float
    cx: float
    cy: float

    def matrix(self) -> np.ndarray:
        return np.array([[self.focal, 0, self.cx], [0, self.focal, self.cy], [0, 0, 1]], dtype=np.float32)


@dataclass
class DatasetMeta:
    """What dataset.json holds."""

    fps: Fraction
    height: int
    width: int
    n_frames: int
    intrinsics: Intrinsics
    n_val: int
    source: str = ""
    version: int = LAYOUT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)  # step reports, e.g. reprojection error

    @property
    def train_frames(self) -> range:
        return range(0, self.n_frames - self.n_val)

    @property
    def val_frames(self) -> range:
        return range(self.n_frames - self.n_val, self.n_frames)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "fps": format_rate(self.fps),
            "height": self.height,
            "width": self.width,
            "n_frames": self.n_frames,
            "intrinsics": {"focal": self.intrinsics.focal, "cx": self.intrinsics.cx, "cy": self.intrinsics.cy},
            "splits": {"train": [0, self.n_frames - self.n_val], "val": [self.n_frames - self.n_val, self.n_frames]},
            "audio": {"file": "audio.wav", "sample_rate": SAMPLE_RATE},
            "source": self.source,
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DatasetMeta:
        train, val = data["splits"]["train"], data["splits"]["val"]
        return cls(
            fps=as_rate(data["fps"]),
            height=int(data["height"]),
            width=int(data["width"]),
            n_frames=int(data["n_frames"]),
            intrinsics=Intrinsics(**data["intrinsics"]),
            n_val=int(val[1] - val[0]) if val else int(data["n_frames"]) - int(train[1]),
            source=data.get("source", ""),
            version=int(data.get("version", LAYOUT_VERSION)),
            extra=data.get("extra", {}),
        )


def held_out(n_frames: int) -> int:
    """Number of validation frames for a clip of n_frames (the last 1/11)."""
    return n_frames // VAL_FRACTION_DENOMINATOR


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write a file so that a killed process leaves either the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(payload)
    os.replace(partial, path)


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial.npy")
    np.save(partial, array, allow_pickle=False)
    os.replace(partial, path)


class Dataset:
    """A dataset folder, read lazily."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        manifest = self.root / "dataset.json"
        if not manifest.is_file():
            raise ThkitError(
                f"{self.root}: not a thkit dataset (no dataset.json)",
                hint="create one with `thkit preprocess VIDEO -o DATASET` or `thkit synth -o DATASET`",
            )
        try:
            self.meta = DatasetMeta.from_json(json.loads(manifest.read_text()))
        except (ValueError, KeyError, TypeError) as error:
            raise ThkitError(f"{manifest}: unreadable dataset metadata ({error})", hint="re-create the dataset") from None

    def __len__(self) -> int:
        return self.meta.n_frames

    def frame_path(self, index: int) -> Path:
        return self.root / "frames" / f"{index:06d}.jpg"

    def mask_path(self, index: int) -> Path:
        return self.root / "masks" / f"{index:06d}.png"

    def frame(self, index: int) -> np.ndarray:
        """[H, W, 3] uint8 RGB."""
        return _read_image(self.frame_path(index), mode="RGB")

    def mask(self, index: int) -> np.ndarray:
        """[H, W] uint8 labels (0 background, 1 torso, 2 head)."""
        return _read_image(self.mask_path(index), mode="L")

    @cached_property
    def background(self) -> np.ndarray:
        return _read_image(self.root / "background.png", mode="RGB")

    def array(self, name: str, *, ground_truth: bool = False) -> np.ndarray:
        """A per-frame array, memory-mapped read-only."""
        if name not in ARRAYS:
            raise KeyError(f"unknown dataset array '{name}'; arrays: {', '.join(ARRAYS)}")
        path = self.root / ("ground_truth" if ground_truth else "") / f"{name}.npy"
        if not path.is_file():
            raise ThkitError(f"{self.root}: missing {path.relative_to(self.root)}", hint="re-create the dataset")
        return np.load(path, mmap_mode="r", allow_pickle=False)

    def audio(self) -> np.ndarray:
        """[samples] float32 mono at 16 kHz."""
        import soundfile

        audio, rate = soundfile.read(self.root / "audio.wav", dtype="float32", always_2d=False)
        if rate != SAMPLE_RATE:
            raise ThkitError(f"{self.root / 'audio.wav'}: sample rate {rate}, expected {SAMPLE_RATE}", hint="re-create the dataset")
        return audio

    def transcript(self) -> str | None:
        """What audio.wav says, when the dataset knows (`audio.txt`); None otherwise."""
        from thkit.audio.speech import transcript_of

        return transcript_of(self.root / "audio.wav")


class DatasetWriter:
    """Writes a dataset folder step by step; `finish()` writes dataset.json last."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        (self.root / "frames").mkdir(parents=True, exist_ok=True)
        (self.root / "masks").mkdir(parents=True, exist_ok=True)

    def write_frame(self, index: int, rgb: np.ndarray) -> None:
        _write_image(self.root / "frames" / f"{index:06d}.jpg", rgb, quality=95)

    def write_mask(self, index: int, labels: np.ndarray) -> None:
        _write_image(self.root / "masks" / f"{index:06d}.png", labels.astype(np.uint8))

    def write_background(self, rgb: np.ndarray) -> None:
        _write_image(self.root / "background.png", rgb)

    def write_audio(self, audio: np.ndarray) -> None:
        import io

        import soundfile

        buffer = io.BytesIO()
        # 24-bit PCM: float WAV would carry libsndfile's PEAK chunk, time-stamped, so equal audio gave unequal files.
        soundfile.write(buffer, np.clip(np.asarray(audio, dtype=np.float32), -1, 1), SAMPLE_RATE, format="WAV", subtype="PCM_24")
        atomic_write_bytes(self.root / "audio.wav", buffer.getvalue())

    def write_transcript(self, text: str | None) -> None:
        """`audio.txt`: what audio.wav says; nothing is written for an unknown (None or blank) transcript."""
        if text and text.strip():
            atomic_write_bytes(self.root / "audio.txt", (text.strip() + "\n").encode())

    def write_array(self, name: str, array: np.ndarray, *, ground_truth: bool = False) -> None:
        if name not in ARRAYS:
            raise KeyError(f"unknown dataset array '{name}'; arrays: {', '.join(ARRAYS)}")
        expected = ARRAYS[name]
        if tuple(array.shape[1:]) != expected:
            raise ValueError(f"{name} must have shape [N, {', '.join(map(str, expected))}], got {array.shape}")
        atomic_save_npy(self.root / ("ground_truth" if ground_truth else "") / f"{name}.npy", np.asarray(array, dtype=np.float32))

    def finish(self, meta: DatasetMeta) -> Dataset:
        for name in ARRAYS:
            path = self.root / f"{name}.npy"
            if not path.is_file():
                raise ValueError(f"cannot finish {self.root}: {name}.npy was not written")
            rows = np.load(path, mmap_mode="r").shape[0]
            if rows != meta.n_frames:
                raise ValueError(f"{name}.npy has {rows} rows, the dataset has {meta.n_frames} frames")
        atomic_write_bytes(self.root / "dataset.json", (json.dumps(meta.to_json(), indent=2) + "\n").encode())
        return Dataset(self.root)


def _read_image(path: Path, mode: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert(mode))
    except FileNotFoundError:
        raise ThkitError(f"{path}: missing", hint="re-create the dataset") from None


def _write_image(path: Path, array: np.ndarray, quality: int | None = None) -> None:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    image = Image.fromarray(np.ascontiguousarray(array))
    if path.suffix == ".jpg":
        image.save(buffer, format="JPEG", quality=quality or 95)
    else:
        image.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())
