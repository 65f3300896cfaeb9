"""`thkit preprocess`: a talking-head video -> a thkit dataset (`thkit.data.layout`).

Steps, each stored under DATASET/.work/ when done so a killed run resumes where it stopped:

scan       decode once at low cost: every frame's exact time, the face every few frames; choose
           one square crop for the clip (`framing`), and which source frame each output frame
           shows at the target fps (`decode_video`)
frames     decode again; crop, resize and write frames/NNNNNN.jpg
audio      the sound under those frames, 16 kHz mono, to audio.wav
landmarks  68 dlib landmarks per frame, tracked, dropouts filled, smoothed (`landmarks`)
pose       one rigid 3D face, per-frame head pose and the focal length, fitted jointly; 3D
           landmarks in head space (`pose`)
masks      background plate, then head / torso / background per frame (`masks`)

Then blink, mouth opening, face and lip boxes (`signals`, quick, so not stored), the arrays, and
dataset.json last.

What each step found (crop, reprojection error, mask threshold, warnings) is kept in dataset.json
under `extra`.
"""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np

from thkit.audio.speech import transcript_of
from thkit.core.errors import ThkitError
from thkit.core.timebase import Rate, as_rate, format_rate
from thkit.data.layout import Dataset, DatasetMeta, DatasetWriter, Intrinsics, held_out
from thkit.data.preprocess import decode_video, masks, pose, signals
from thkit.data.preprocess.frames_io import WritePool, read_ahead, read_gray, read_rgb
from thkit.data.preprocess.framing import Crop, choose_crop
from thkit.data.preprocess.landmarks import FaceDetector, fill_dropouts, smooth_landmarks, track_landmarks
from thkit.data.preprocess.steps import WORK, Bars, StepResult, StepStore

__all__ = ["preprocess"]

SCAN_DETECTIONS = 300  # faces detected while scanning, spread over the clip, to place the crop
PLATE_SAMPLES = 60  # frames that build the background plate
MIN_SIZE = 64


def preprocess(video: str | Path, out: str | Path, fps: Rate = 25, size: int = 512, progress: bool = True) -> Dataset:
    """Preprocess `video` into a dataset folder `out` (resuming an unfinished run there).

    Unusable input raises ThkitError; problems that leave a usable dataset are warned about
    (`problems`) and listed in dataset.json under extra.warnings.
    """
    video, out = Path(video), Path(out)
    try:
        fps = as_rate(fps)
    except ValueError as error:
        raise ThkitError(f"--fps: {error}", hint="e.g. --fps 25 or --fps 30000/1001") from None
    if size < MIN_SIZE:
        raise ThkitError(f"--size {size} is too small for face landmarks", hint=f"use --size {MIN_SIZE} or more (512 is usual)")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / WORK).is_dir())):
        raise ThkitError(f"{out} already exists and is not a preprocess output folder", hint="choose a new output folder")
    info = decode_video.probe(video)
    stat = video.stat()
    config = {"video": str(video.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns, "fps": format_rate(fps), "size": size}
    (out / "dataset.json").unlink(missing_ok=True)  # the dataset is complete again only when finished
    store = StepStore(out, config)
    if store.started_over:
        for stale in ("frames", "masks"):
            shutil.rmtree(out / stale, ignore_errors=True)
    writer = DatasetWriter(out)
    with Bars(progress) as bars:
        run = _Run(info, fps, size, store, writer, bars)
        scan = run.step("scan", run.scan)
        crop = Crop(*(int(v) for v in scan.arrays["crop"]))
        n_frames = int(scan.arrays["picks"].shape[0])
        framed = run.step("frames", lambda: run.frames(scan.arrays["picks"], crop))
        sound = run.step("audio", lambda: run.audio(n_frames))
        writer.write_transcript(transcript_of(video))  # a sidecar VIDEO.txt says what the speech says
        tracked = run.step("landmarks", lambda: run.landmarks(n_frames))
        landmarks2d = tracked.arrays["landmarks"]
        fitted = run.step("pose", lambda: run.pose(landmarks2d, crop))
        masked = run.step("masks", lambda: run.masks(landmarks2d))
    stored = [scan, framed, sound, tracked, fitted, masked]
    for name, array in _signals(landmarks2d, fitted.arrays["landmarks3d"], size).items():
        writer.write_array(name, array)
    writer.write_array("landmarks2d", landmarks2d)
    writer.write_array("landmarks3d", fitted.arrays["landmarks3d"])
    writer.write_array("poses", fitted.arrays["poses"])
    extra = {
        "crop": crop.as_dict() | {"source_width": info.width, "source_height": info.height, "rotation": info.rotation},
        "variable_frame_rate": scan.facts["variable_rate"],
        "landmarks": tracked.facts,
        "pose": {k: v for k, v in fitted.facts.items() if k not in ("focal", "cx", "cy")},
        "masks": masked.facts,
        "warnings": [f"{category}: {message}" for result in stored for category, message in result.warnings],
    }
    meta = DatasetMeta(
        fps=fps,
        height=size,
        width=size,
        n_frames=n_frames,
        intrinsics=Intrinsics(fitted.facts["focal"], fitted.facts["cx"], fitted.facts["cy"]),
        n_val=held_out(n_frames),
        source=str(video),
        extra=extra,
    )
    return writer.finish(meta)


def _signals(landmarks2d: np.ndarray, landmarks3d: np.ndarray, size: int) -> dict[str, np.ndarray]:
    return {
        "blink": signals.blink(landmarks3d),
        "mouth": signals.mouth(landmarks3d),
        "face_boxes": signals.face_boxes(landmarks2d, size, size),
        "lip_boxes": signals.lip_boxes(landmarks2d, size, size),
    }


class _Run:
    """The steps of one preprocess run; each returns a StepResult for the store to keep."""

    def __init__(self, info: decode_video.VideoInfo, fps: Fraction, size: int, store: StepStore, writer: DatasetWriter, bars: Bars) -> None:
        self.info, self.fps, self.size, self.store, self.writer, self.bars = info, fps, size, store, writer, bars

    def step(self, name, compute) -> StepResult:
        if self.store.done(name):
            self.bars.note(name)
        return self.store.run(name, compute)

    def frame_paths(self, n_frames: int) -> list[Path]:
        return [self.writer.root / "frames" / f"{i:06d}.jpg" for i in range(n_frames)]

    def scan(self) -> StepResult:
        info = self.info
        estimate = int(info.seconds * info.nominal_rate) if info.seconds == info.seconds else None
        every = max(1, (estimate or 0) // SCAN_DETECTIONS)
        detector = FaceDetector()
        times, boxes = [], []
        with self.bars.task("scan", estimate) as advance:
            for index, (time, gray) in enumerate(decode_video.frames(info, gray=True)):
                times.append(time)
                if index % every == 0:
                    found = detector(gray)
                    if found:
                        boxes.append(found[0])
                advance(1)
        timing = decode_video.timing(times, info)
        if not boxes:
            raise ThkitError(
                f"{info.path}: no face found in the video",
                hint="give a video where the subject faces the camera, lit and unobstructed",
            )
        crop = choose_crop(np.array(boxes), info.width, info.height, self.size)
        picks = timing.picks(self.fps)
        arrays = {"picks": picks, "crop": np.array([crop.x0, crop.y0, crop.side, crop.size]), "boxes": np.array(boxes)}
        facts = {"source_frames": len(times), "variable_rate": timing.variable_rate, "seconds": float(timing.end)}
        return StepResult(arrays, facts)

    def frames(self, picks: np.ndarray, crop: Crop) -> StepResult:
        with self.bars.task("frames", picks.shape[0]) as advance, WritePool() as pool:
            for index, rgb in decode_video.resampled(self.info, picks):
                pool.submit(self.writer.write_frame, index, crop.apply(rgb))
                advance(1)
        return StepResult({}, {"n_frames": int(picks.shape[0])})

    def audio(self, n_frames: int) -> StepResult:
        with self.bars.task("audio", 1):
            self.writer.write_audio(decode_video.audio(self.info, n_frames, self.fps))
        return StepResult({})

    def landmarks(self, n_frames: int) -> StepResult:
        with self.bars.task("landmarks", n_frames) as advance:
            raw = track_landmarks(read_ahead(read_gray, self.frame_paths(n_frames)), n_frames, advance)
        filled, long_gaps = fill_dropouts(raw, float(self.fps), str(self.info.path))
        smoothed = smooth_landmarks(filled, float(self.fps))
        lost = np.isnan(raw).any(axis=(1, 2))
        facts = {"lost_frames": int(lost.sum()), "long_dropouts": [[a, b] for a, b in long_gaps]}
        return StepResult({"landmarks": smoothed.astype(np.float32), "raw": raw.astype(np.float32)}, facts)

    def pose(self, landmarks2d: np.ndarray, crop: Crop) -> StepResult:
        landmarks2d = landmarks2d.astype(np.float64)
        cx, cy = crop.to_output(np.array([self.info.width / 2, self.info.height / 2]))
        with self.bars.task("pose", 2 + pose.ROBUST_ROUNDS) as advance:
            fit = pose.fit_head(landmarks2d, float(cx), float(cy), pose.focal_guess(landmarks2d), advance)
            fit = pose.smooth(fit, float(self.fps))
        error = fit.reprojection_error(landmarks2d)
        facts = {
            "focal": fit.focal,
            "cx": float(cx),
            "cy": float(cy),
            "reprojection_px_mean": float(error.mean()),
            "reprojection_px_median": float(np.median(error)),
            "reprojection_px_p95": float(np.percentile(error, 95)),
        }
        arrays = {"poses": fit.camera_to_world().astype(np.float32), "landmarks3d": pose.landmarks_3d(landmarks2d, fit).astype(np.float32), "shape": fit.shape}
        return StepResult(arrays, facts)

    def masks(self, landmarks2d: np.ndarray) -> StepResult:
        n_frames = landmarks2d.shape[0]
        paths = self.frame_paths(n_frames)
        samples = np.unique(np.linspace(0, n_frames - 1, min(PLATE_SAMPLES, n_frames)).round().astype(int))
        with self.bars.task("plate", 1):
            plate, threshold, facts = masks.background_plate([read_rgb(paths[i]) for i in samples], landmarks2d[samples], str(self.info.path))
        self.writer.write_background(plate)
        with self.bars.task("masks", n_frames) as advance, WritePool() as pool:
            for i, rgb in enumerate(read_ahead(read_rgb, paths)):
                pool.submit(self.writer.write_mask, i, masks.labels(rgb, plate, landmarks2d[i], threshold))
                advance(1)
        return StepResult({}, facts)
