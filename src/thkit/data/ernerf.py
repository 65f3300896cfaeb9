"""Existing data: an ER-NeRF / AD-NeRF / RAD-NeRF data folder as a thkit dataset.

The peers' `data_utils/process.py` writes (all at 25 fps, frame i named `i`):

```
transforms_train.json, transforms_val.json   focal_len, cx, cy, frames[{img_id, aud_id, transform_matrix}]
ori_imgs/<i>.jpg, ori_imgs/<i>.lms            frames; 68 face_alignment landmarks, "x y" per line
parsing/<i>.png                               BiSeNet labels, colour coded (below)
bc.jpg                                        background plate
aud.wav                                       16 kHz speech
torso_imgs/<i>.png, gt_imgs/, aud_*.npy, au.csv, track_params.pt   (not needed here)
```

How their numbers map onto the thkit layout:

- transform_matrix is an OpenGL camera-to-world matrix (camera looking along -z, y up), the
  inverse of the face tracker's [R | t]: its projection u = cx - f X/Z, v = cy + f Y/Z (Z < 0) is
  exactly an OpenGL pinhole. The world is the BFM 3DMM's head space, axes as ours (x to the
  image's right, y up, z out of the face), but in metres (the tracker works in BFM decimetres
  and `save_transforms` divides its translations by 10) and centred on the BFM mean face's vertex
  centroid rather than between the ears. So rotations are kept as they are, translations are
  multiplied by 10 (to dm), and the origin is moved by an offset o: a point is X_thkit =
  10 X_theirs + o. o is fitted per dataset (least squares: the generic face moved by o must
  project onto the landmarks through their cameras), because the BFM centroid's place in a head
  is a property of the BFM mesh, not something their files state. Their internal re-mapping for
  training (`nerf_matrix_to_ngp`, axis permutation and scale) is applied when they load, never
  written, so it plays no part here.
- focal_len, cx, cy are the intrinsics in pixels of the 512 (or whatever size) frames; fps is 25.
- .lms are face_alignment's 68 iBUG points with pixel centres on integers; 1/2 px is added for the
  layout's continuous coordinates. Missing .lms files are interpolated (`landmarks.fill_dropouts`);
  a folder with none is tracked with dlib as `thkit preprocess` does.
- parsing/ colours, as `face_parsing/test.py` builds them: head (face, hair, ears) [255, 0, 0],
  neck [0, 255, 0], torso [0, 0, 255], background white, written by cv2 as BGR, so in the PNG
  (RGB) the head is blue and the torso red. Forks that write RGB swap the two; which one is head
  is decided by the colour under the nose tip. Head -> 2, neck and torso -> 1, the rest -> 0.
  Frames without a parsing/ file get masks made with bc.jpg as the background plate (`masks`);
  without bc.jpg the plate is made from the frames, as `thkit preprocess` makes it.
- The split: their last int(N/11) frames are transforms_val.json, as in the layout.
- 3D landmarks, blink and mouth do not exist there (ER-NeRF reads blink from an OpenFace au.csv):
  the subject's 3D face is triangulated from the landmarks through their cameras (`pose.triangulate`),
  each frame's 2D landmarks are back-projected onto it (`pose.landmarks_3d`), and blink and mouth
  come from those (`signals`), exactly as for a preprocessed video.
"""

from __future__ import annotations

import json
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from thkit.audio.decode import load_audio
from thkit.core.errors import ThkitError
from thkit.data.layout import SAMPLE_RATE, Dataset, DatasetMeta, DatasetWriter, Intrinsics, atomic_write_bytes, held_out
from thkit.data.preprocess import masks, pose, signals
from thkit.data.preprocess.frames_io import read_gray, read_rgb
from thkit.data.preprocess.landmarks import fill_dropouts, smooth_landmarks, track_landmarks
from thkit.data.preprocess.mean_face import GENERIC_FACE, RIGID
from thkit.data.preprocess.steps import Bars

FPS = 25
METRES_TO_DM = 10.0
HEAD_COLOURS = {"blue": (0, 0, 255), "red": (255, 0, 0)}  # the head's PNG colour, ER-NeRF's first
NECK = (0, 255, 0)


def import_ernerf(folder: str | Path, out: str | Path, progress: bool = True) -> Dataset:
    """Convert the ER-NeRF-format `folder` into a thkit dataset at `out`."""
    folder, out = Path(folder), Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ThkitError(f"{out} already exists and is not an empty folder", hint="choose a new output folder")
    frames, intrinsics, n_val = _read_transforms(folder)
    ids = [frame["img_id"] for frame in frames]
    images = [folder / "ori_imgs" / f"{i}.jpg" for i in ids]
    missing = [path for path in images if not path.is_file()]
    if missing:
        raise ThkitError(f"{folder}: {len(missing)} frames listed in the transforms are missing, e.g. {missing[0]}", hint="copy the whole ori_imgs/ folder")
    first = read_rgb(images[0])
    height, width = first.shape[:2]
    writer = DatasetWriter(out)
    with Bars(progress) as bars:
        with bars.task("frames", len(images)) as advance:
            for index, path in enumerate(images):
                atomic_write_bytes(writer.root / "frames" / f"{index:06d}.jpg", path.read_bytes())
                advance(1)
        landmarks2d = _landmarks(folder, ids, images, bars)
        camera_to_world = np.array([frame["transform_matrix"] for frame in frames], dtype=np.float64)
        fit, offset = _head(camera_to_world, landmarks2d, intrinsics)
        plate = _plate(folder, images, landmarks2d)
        with bars.task("masks", len(ids)) as advance:
            head_colour = _write_masks(writer, folder, ids, images, landmarks2d, plate, advance)
    writer.write_background(plate)
    writer.write_audio(_audio(folder, len(ids)))
    landmarks3d = pose.landmarks_3d(landmarks2d, fit)
    arrays = {
        "poses": fit.camera_to_world(),
        "landmarks2d": landmarks2d,
        "landmarks3d": landmarks3d,
        "blink": signals.blink(landmarks3d),
        "mouth": signals.mouth(landmarks3d),
        "face_boxes": signals.face_boxes(landmarks2d, width, height),
        "lip_boxes": signals.lip_boxes(landmarks2d, width, height),
    }
    for name, array in arrays.items():
        writer.write_array(name, array)
    error = fit.reprojection_error(landmarks2d)
    meta = DatasetMeta(
        fps=Fraction(FPS),
        height=height,
        width=width,
        n_frames=len(ids),
        intrinsics=intrinsics,
        n_val=n_val,
        source=f"ernerf:{folder}",
        extra={
            "ernerf": {
                "origin_offset_dm": offset.tolist(),
                "metres_to_dm": METRES_TO_DM,
                "head_colour": head_colour,
                "reprojection_px_mean": float(error.mean()),
            }
        },
    )
    return writer.finish(meta)


def _read_transforms(folder: Path) -> tuple[list[dict], Intrinsics, int]:
    train_path, val_path = folder / "transforms_train.json", folder / "transforms_val.json"
    if not train_path.is_file():
        raise ThkitError(f"{folder}: no transforms_train.json, so not an ER-NeRF / AD-NeRF data folder", hint="give the folder that process.py wrote")
    try:
        train = json.loads(train_path.read_text())
        val = json.loads(val_path.read_text()) if val_path.is_file() else {"frames": []}
        intrinsics = Intrinsics(float(train["focal_len"]), float(train["cx"]), float(train["cy"]))
        frames = sorted(train["frames"] + val["frames"], key=lambda frame: int(frame["img_id"]))
        for frame in frames:
            frame["img_id"] = int(frame["img_id"])
            if np.asarray(frame["transform_matrix"]).shape != (4, 4):
                raise ValueError(f"frame {frame['img_id']}: transform_matrix is not 4 x 4")
    except (ValueError, KeyError, TypeError) as error:
        raise ThkitError(f"{train_path}: unreadable transforms ({error})", hint="give the files process.py wrote") from None
    if not frames:
        raise ThkitError(f"{train_path}: lists no frames", hint="give the files process.py wrote")
    val_ids = sorted(int(frame["img_id"]) for frame in val["frames"])
    all_ids = [frame["img_id"] for frame in frames]
    if len(set(all_ids)) != len(all_ids):
        raise ThkitError(f"{folder}: a frame is listed twice in the transforms", hint="check transforms_train.json and transforms_val.json")
    n_val = len(val_ids)
    if val_ids != all_ids[len(all_ids) - n_val :]:
        n_val = held_out(len(all_ids))
        warnings.warn(f"{val_path}: the validation frames are not the clip's last ones; using the last {n_val} instead", stacklevel=3)
    return frames, intrinsics, n_val


def _landmarks(folder: Path, ids: list[int], images: list[Path], bars: Bars) -> np.ndarray:
    files = [folder / "ori_imgs" / f"{i}.lms" for i in ids]
    if not any(path.is_file() for path in files):
        with bars.task("landmarks", len(images)) as advance:
            raw = track_landmarks((read_gray(path) for path in images), len(images), advance)
        filled, _ = fill_dropouts(raw, FPS, str(folder))
        return smooth_landmarks(filled, FPS)
    raw = np.full((len(ids), 68, 2), np.nan)
    for index, path in enumerate(files):
        if path.is_file():
            points = np.loadtxt(path, dtype=np.float64, ndmin=2)
            if points.shape != (68, 2):
                raise ThkitError(f"{path}: expected 68 lines of 'x y', got an array of shape {points.shape}", hint="re-run the landmark step")
            raw[index] = points + 0.5
    filled, _ = fill_dropouts(raw, FPS, str(folder))
    return filled


def _plate(folder: Path, images: list[Path], landmarks2d: np.ndarray) -> np.ndarray:
    """bc.jpg, or when it is missing a plate made as `thkit preprocess` makes one."""
    if (folder / "bc.jpg").is_file():
        return read_rgb(folder / "bc.jpg")
    samples = np.unique(np.linspace(0, len(images) - 1, min(60, len(images))).round().astype(int))
    plate, _, _ = masks.background_plate([read_rgb(images[i]) for i in samples], landmarks2d[samples], str(folder))
    return plate


def _write_masks(writer: DatasetWriter, folder: Path, ids: list[int], images: list[Path], landmarks2d: np.ndarray, plate: np.ndarray, advance) -> str | None:
    """Labels from parsing/ where it exists, else from the plate; returns the head's colour there."""
    head_colour, threshold = None, None
    for index, image_id in enumerate(ids):
        parsing = folder / "parsing" / f"{image_id}.png"
        if parsing.is_file():
            coded = read_rgb(parsing)
            head_colour = head_colour or _head_colour(coded, landmarks2d[index])
            writer.write_mask(index, _labels(coded, head_colour))
        else:
            if threshold is None:
                samples = np.unique(np.linspace(0, len(ids) - 1, min(30, len(ids))).round().astype(int))
                threshold, _ = masks.foreground_threshold(plate, [read_rgb(images[i]) for i in samples], landmarks2d[samples])
            writer.write_mask(index, masks.labels(read_rgb(images[index]), plate, landmarks2d[index], threshold))
        advance(1)
    return head_colour


def _head(camera_to_world: np.ndarray, landmarks2d: np.ndarray, intrinsics: Intrinsics) -> tuple[pose.HeadFit, np.ndarray]:
    """Their cameras in thkit head space, and the origin offset o (dm) that puts them there."""
    poses = camera_to_world.copy()
    poses[:, :3, 3] *= METRES_TO_DM
    rotations, translations = pose.from_camera_to_world(poses)
    observed = landmarks2d[:, RIGID]

    def misfit(offset: np.ndarray) -> np.ndarray:
        camera = pose.camera_points(rotations, translations - rotations @ offset, GENERIC_FACE[RIGID])
        return (pose.project(camera, intrinsics.focal, intrinsics.cx, intrinsics.cy) - observed).ravel()

    offset = least_squares(misfit, np.zeros(3), loss="soft_l1", f_scale=2.0).x
    fit = pose.HeadFit(rotations, translations - rotations @ offset, GENERIC_FACE.copy(), intrinsics.focal, intrinsics.cx, intrinsics.cy)
    fit.shape = pose.triangulate(landmarks2d, fit, keep_rigid=False)
    return fit, offset


def _head_colour(coded: np.ndarray, landmarks: np.ndarray) -> str:
    """'blue' (ER-NeRF as written) or 'red' (RGB-writing forks): the colour under the nose tip."""
    x, y = np.clip(np.round(landmarks[30] - 0.5).astype(int), 0, [coded.shape[1] - 1, coded.shape[0] - 1])
    for name, colour in HEAD_COLOURS.items():
        if np.abs(coded[y, x].astype(int) - colour).max() < 60:
            return name
    return "blue"


def _labels(coded: np.ndarray, head_colour: str) -> np.ndarray:
    colour = coded.astype(np.int16)

    def near(target: tuple[int, int, int]) -> np.ndarray:
        return np.abs(colour - np.array(target)).max(axis=2) < 60

    torso_colour = HEAD_COLOURS["red" if head_colour == "blue" else "blue"]
    out = np.zeros(coded.shape[:2], np.uint8)
    out[near(torso_colour) | near(NECK)] = 1
    out[near(HEAD_COLOURS[head_colour])] = 2
    return out


def _audio(folder: Path, n_frames: int) -> np.ndarray:
    path = folder / "aud.wav"
    if not path.is_file():
        raise ThkitError(f"{folder}: no aud.wav", hint="extract it: ffmpeg -i VIDEO -ar 16000 -ac 1 aud.wav")
    sound = load_audio(path, SAMPLE_RATE)
    length = n_frames * SAMPLE_RATE // FPS
    out = np.zeros(length, dtype=np.float32)
    out[: min(length, sound.shape[0])] = sound[:length]
    return out
