"""`thkit preprocess`: proof against the synthetic subject's ground truth, resume, and bad input.

The proof runs preprocess on the synthetic subject's mp4 (256 x 256, what `thkit synth` writes)
with --size 256. The crop it picks is the whole frame (asserted), so output pixels are source
pixels and the ground truth is compared as it is, without any resampling. Landmarks are compared
in the layout's coordinates (pixel centres at +1/2) on every frame. Head rotation is compared after
aligning the two canonical head frames by the one rotation that best maps ours onto the ground
truth's (over all frames): the canonical frame is defined by each side's own face model, so only
the motion is comparable; comparing to frame 0 instead adds that one frame's error to every other
(it is reported too). Masks are compared on every frame.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import skimage.data
from scipy.spatial.transform import Rotation

from thkit.core.errors import ThkitError
from thkit.data.layout import Dataset
from thkit.data.preprocess import decode_video, masks, preprocess, signals
from thkit.data.preprocess.framing import choose_crop
from thkit.data.preprocess.landmarks import SHAPE_PREDICTOR, fill_dropouts, model_file, track_landmarks
from thkit.data.preprocess.mean_face import GENERIC_FACE, RIGID
from thkit.data.preprocess.pose import HeadFit, fit_head, focal_guess, landmarks_3d
from thkit.data.preprocess.problems import (
    FaceDropoutWarning,
    MovingCameraWarning,
    MultipleFacesWarning,
    PreprocessWarning,
    VariableFrameRateWarning,
)
from thkit.data.preprocess.steps import StepResult, StepStore

SUBJECT_SECONDS = 20
SIZE = 256


# --- media ------------------------------------------------------------------------------------


def write_clip(path: Path, frames: list[np.ndarray] | np.ndarray, fps: int = 25, *, audio_seconds: float | None = None, times: list[Fraction] | None = None, rotation: int = 0) -> Path:
    """H.264 mp4 of RGB frames (optionally at explicit presentation times), with a 220 Hz tone if audio_seconds."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if times is not None:
            stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
        if rotation:
            stream.set_display_rotation(rotation)
        sound = container.add_stream("aac", rate=16000, layout="mono") if audio_seconds else None
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            if times is not None:
                frame.pts, frame.time_base = int(times[index] * 1000), Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if sound is not None:
            samples = (0.2 * np.sin(2 * np.pi * 220 * np.arange(int(audio_seconds * 16000)) / 16000)).astype(np.float32)
            for start in range(0, samples.shape[0], 1024):
                chunk = av.AudioFrame.from_ndarray(samples[None, start : start + 1024], format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = 16000, start
                container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))
    return path


def gradient_frames(count: int, size: int = 64) -> list[np.ndarray]:
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    return [np.dstack([np.roll(ramp, i)[None].repeat(size, 0)] * 3).astype(np.uint8) for i in range(count)]


@pytest.fixture(scope="module")
def subject(tmp_path_factory) -> Dataset:
    """A synthetic subject with ground truth (dataset folder plus video.mp4)."""
    from thkit.data.synth import generate

    return Dataset(generate(tmp_path_factory.mktemp("subject") / "subject", seconds=SUBJECT_SECONDS, size=SIZE, seed=0, progress=False))


@pytest.fixture(scope="module")
def processed(subject, tmp_path_factory) -> tuple[Dataset, float]:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error", PreprocessWarning)  # the synthetic subject is clean input
        dataset = preprocess(subject.root / "video.mp4", tmp_path_factory.mktemp("pre") / "dataset", size=SIZE, progress=False)
    return dataset, time.perf_counter() - start


# --- proof against ground truth -------------------------------------------------------------


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def _rotation_errors(estimated: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame degrees between camera-to-world rotations: (globally aligned, relative to frame 0)."""
    u, _, vt = np.linalg.svd(np.einsum("nij,nkj->ik", estimated, truth))
    align = u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt  # estimated ~ align @ truth
    aligned = Rotation.from_matrix(np.einsum("nji,njk->nik", estimated, align @ truth)).magnitude()
    relative = lambda r: np.einsum("nij,kj->nik", r, r[0])  # noqa: E731
    to_first = Rotation.from_matrix(np.einsum("nji,njk->nik", relative(estimated), relative(truth))).magnitude()
    return np.degrees(aligned), np.degrees(to_first)


def test_recovers_the_synthetic_subjects_ground_truth(subject, processed):
    dataset, seconds = processed
    truth = lambda name: np.asarray(subject.array(name, ground_truth=True))  # noqa: E731
    crop = dataset.meta.extra["crop"]
    assert (crop["x0"], crop["y0"], crop["side"], crop["size"]) == (0, 0, SIZE, SIZE), "the comparison assumes an identity crop"
    assert len(dataset) == len(subject) and dataset.meta.fps == 25

    landmark_error = np.linalg.norm(np.asarray(dataset.array("landmarks2d")) - truth("landmarks2d"), axis=-1)
    aligned, to_first = _rotation_errors(np.asarray(dataset.array("poses"))[:, :3, :3], truth("poses")[:, :3, :3])
    head = [_iou(dataset.mask(i) == 2, subject.mask(i) == 2) for i in range(len(dataset))]
    person = [_iou(dataset.mask(i) > 0, subject.mask(i) > 0) for i in range(len(dataset))]
    frames = [dataset.frame(i).astype(float) - subject.frame(i) for i in range(0, len(dataset), 25)]
    psnr = 10 * np.log10(255**2 / np.mean([np.mean(d**2) for d in frames]))
    blink = np.corrcoef(np.asarray(dataset.array("blink")), truth("blink"))[0, 1]
    mouth = np.corrcoef(np.asarray(dataset.array("mouth")), truth("mouth"))[0, 1]
    report = {
        "landmark_px_mean": float(landmark_error.mean()),
        "rotation_deg_mean_aligned": float(aligned.mean()),
        "rotation_deg_max_aligned": float(aligned.max()),
        "rotation_deg_mean_vs_frame0": float(to_first.mean()),
        "head_iou_mean": float(np.mean(head)),
        "head_iou_min": float(np.min(head)),
        "foreground_iou_mean": float(np.mean(person)),
        "foreground_iou_min": float(np.min(person)),
        "frames_psnr_db": float(psnr),
        "blink_corr": float(blink),
        "mouth_corr": float(mouth),
        "focal": dataset.meta.intrinsics.focal,
        "focal_truth": subject.meta.intrinsics.focal,
        "reprojection_px": dataset.meta.extra["pose"]["reprojection_px_mean"],
        "preprocess_seconds": seconds,
    }
    print("\n" + json.dumps(report, indent=1))
    assert report["landmark_px_mean"] <= 2.0
    assert report["rotation_deg_mean_aligned"] <= 2.0
    assert report["head_iou_mean"] >= 0.9 and report["foreground_iou_mean"] >= 0.9
    assert report["head_iou_min"] >= 0.85 and report["foreground_iou_min"] >= 0.85
    assert psnr > 30, "output frame i must show source frame i (resampling by time)"
    assert blink > 0.8 and mouth > 0.8
    audio, expected = dataset.audio(), subject.audio()
    assert audio.shape == expected.shape
    assert np.corrcoef(audio, expected)[0, 1] > 0.95


def test_dataset_arrays_are_consistent(subject, processed):
    dataset, _ = processed
    assert dataset.transcript() == subject.transcript()  # the video's sidecar transcript came along
    n = len(dataset)
    poses = np.asarray(dataset.array("poses"))
    rotations = poses[:, :3, :3]
    assert np.allclose(np.einsum("nij,nkj->nik", rotations, rotations), np.eye(3), atol=1e-4)
    assert np.allclose(np.linalg.det(rotations), 1, atol=1e-4)
    assert (poses[:, 2, 3] > 5).all(), "the camera sits in front of the face (+z), about a metre away"
    landmarks3d = np.asarray(dataset.array("landmarks3d"))
    assert landmarks3d.shape == (n, 68, 3)
    span = np.linalg.norm(landmarks3d[:, 45] - landmarks3d[:, 36], axis=-1)
    assert np.all(np.abs(span - 0.9) < 0.1), "canonical head space in dm: outer eye corners about 0.9 apart"
    assert (landmarks3d[:, 30, 2] > landmarks3d[:, 36, 2]).all(), "z points out of the face: the nose is in front"
    # the 3D landmarks project back onto the 2D ones through the poses
    fit_rotations = np.transpose(rotations, (0, 2, 1))
    fit = HeadFit(fit_rotations, -np.einsum("nij,nj->ni", fit_rotations, poses[:, :3, 3]), GENERIC_FACE, dataset.meta.intrinsics.focal, dataset.meta.intrinsics.cx, dataset.meta.intrinsics.cy)
    assert np.abs(fit.project(landmarks3d) - np.asarray(dataset.array("landmarks2d"))).max() < 1e-2
    boxes = np.asarray(dataset.array("face_boxes"))
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    assert set(np.unique(dataset.mask(0))) == {0, 1, 2}
    assert dataset.meta.extra["pose"]["reprojection_px_mean"] < 1.0
    assert dataset.meta.n_val == n // 11 and dataset.background.shape == (SIZE, SIZE, 3)


def test_a_killed_run_resumes_without_redoing_finished_steps(subject, processed, tmp_path):
    finished, _ = processed
    copy = shutil.copytree(finished.root, tmp_path / "dataset")
    (copy / "dataset.json").unlink()
    (copy / ".work" / "masks.done").unlink()  # killed while writing masks
    (copy / "masks" / "000007.png").unlink()
    log_before = (copy / ".work" / "steps.log").read_text().split()
    frame_time = os.stat(copy / "frames" / "000007.jpg").st_mtime_ns
    landmarks_time = os.stat(copy / ".work" / "landmarks.npz").st_mtime_ns
    resumed = preprocess(subject.root / "video.mp4", copy, size=SIZE, progress=False)
    assert StepStore(copy, json.loads((copy / ".work" / "config.json").read_text())).log()[-1:] == ["masks"]
    assert (copy / ".work" / "steps.log").read_text().split()[: len(log_before)] == log_before
    assert len((copy / ".work" / "steps.log").read_text().splitlines()) == len(log_before) // 2 + 1
    assert os.stat(copy / "frames" / "000007.jpg").st_mtime_ns == frame_time
    assert os.stat(copy / ".work" / "landmarks.npz").st_mtime_ns == landmarks_time
    assert (copy / "masks" / "000007.png").is_file() and (copy / "dataset.json").is_file()
    assert np.array_equal(resumed.mask(7), finished.mask(7))
    assert np.array_equal(np.asarray(resumed.array("poses")), np.asarray(finished.array("poses")))


# --- bad input ----------------------------------------------------------------------------------


def test_missing_file_no_audio_short_and_corrupt_are_errors(tmp_path):
    with pytest.raises(ThkitError, match="no such file"):
        preprocess(tmp_path / "absent.mp4", tmp_path / "out", progress=False)
    silent = write_clip(tmp_path / "silent.mp4", gradient_frames(275))
    with pytest.raises(ThkitError, match="silent.mp4: has no audio stream") as error:
        preprocess(silent, tmp_path / "out", progress=False)
    assert "mux the audio in" in error.value.format()
    short = write_clip(tmp_path / "short.mp4", gradient_frames(75), audio_seconds=3)
    with pytest.raises(ThkitError, match=r"short.mp4: the video is 3.0 s long; preprocessing needs at least 10 s"):
        preprocess(short, tmp_path / "out", progress=False)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(ThkitError, match="garbage.mp4: not a readable video file"):
        preprocess(garbage, tmp_path / "out", progress=False)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    with pytest.raises(ThkitError, match="taken already exists and is not a preprocess output folder"):
        preprocess(silent, taken, progress=False)
    with pytest.raises(ThkitError, match="--fps: not a rate"):
        preprocess(silent, tmp_path / "out", fps="fast", progress=False)
    with pytest.raises(ThkitError, match="--size 32 is too small"):
        preprocess(silent, tmp_path / "out", size=32, progress=False)
    whole = write_clip(tmp_path / "whole.mp4", gradient_frames(275), audio_seconds=11).read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(whole[: len(whole) // 2])  # the mp4 index (moov) is at the end
    with pytest.raises(ThkitError, match="truncated.mp4"):
        preprocess(truncated, tmp_path / "out", progress=False)


def test_no_face_is_an_error(tmp_path):
    clip = write_clip(tmp_path / "wall.mp4", gradient_frames(275), audio_seconds=11)
    with pytest.raises(ThkitError, match="wall.mp4: no face found") as error:
        preprocess(clip, tmp_path / "out", progress=False)
    assert "faces the camera" in error.value.format()


def test_variable_frame_rate_is_resampled_by_timestamps(tmp_path):
    rng = np.random.default_rng(1)
    times, now = [], Fraction(0)
    while now < 11:
        times.append(now)
        now += Fraction(int(rng.choice([20, 33, 50, 67])), 1000)  # 15 to 50 fps, as phones record
    frames = [np.full((32, 32, 3), (i * 7) % 256, np.uint8) for i in range(len(times))]  # frame brightness = its index
    clip = write_clip(tmp_path / "vfr.mp4", frames, fps=30, audio_seconds=11, times=times)
    info = decode_video.probe(clip)
    decoded = list(decode_video.frames(info))
    with pytest.warns(VariableFrameRateWarning, match="variable frame rate"):
        timing = decode_video.timing([t for t, _ in decoded], info)
    assert timing.times == times
    picks = timing.picks(Fraction(25))
    assert picks.shape[0] == int(timing.end * 25)
    for j in (0, 3, 100, picks.shape[0] - 1):
        middle = (2 * j + 1) / Fraction(50)
        assert times[picks[j]] <= middle and (picks[j] + 1 == len(times) or times[picks[j] + 1] > middle)
    shown = [int(rgb[0, 0, 0]) for _, rgb in decode_video.resampled(info, picks[:40])]
    assert np.abs(np.array(shown) - (picks[:40] * 7) % 256).max() <= 3


def test_resampling_rates_exactly():
    thirty = decode_video.Timing([Fraction(i, 30) for i in range(300)], Fraction(10), False)
    assert thirty.picks(Fraction(25)).tolist()[:6] == [0, 1, 3, 4, 5, 6]  # source frame on screen at (j + 1/2) / 25
    assert thirty.output_count(Fraction(25)) == 250
    ntsc = decode_video.Timing([Fraction(1001 * i, 30000) for i in range(30000)], Fraction(1001 * 30000, 30000), False)
    picks = ntsc.picks(Fraction(25))
    assert picks.shape[0] == 25025 and picks[-1] == 29999  # 1001 s at 25 fps, no drift at the end
    same = decode_video.Timing([Fraction(i, 25) for i in range(250)], Fraction(10), False)
    assert same.picks(Fraction(25)).tolist() == list(range(250))


def test_rotation_metadata_is_honoured(tmp_path):
    picture = np.zeros((32, 64, 3), np.uint8)
    picture[:, :32] = 255  # white on the left
    clip = write_clip(tmp_path / "phone.mp4", [picture] * 275, rotation=-90, audio_seconds=11)  # shown turned clockwise
    info = decode_video.probe(clip)
    assert (info.width, info.height, info.rotation) == (32, 64, -90)
    _, upright = next(decode_video.frames(info))
    assert upright.shape == (64, 32, 3)
    assert upright[:16].mean() > 200 and upright[48:].mean() < 50, "the left (white) half turned clockwise is the top"


def test_crop_is_stable_square_with_room_for_hair_and_shoulders():
    rng = np.random.default_rng(0)
    centres = np.array([900, 400]) + rng.normal(0, 10, (200, 2))
    boxes = np.concatenate([centres - 100, centres + 100], axis=1)
    boxes[:5] += 400  # a few false detections
    crop = choose_crop(boxes, 1920, 1080, 512)
    assert 560 <= crop.side <= 700 and crop.size == 512
    assert crop.x0 < 800 and crop.x0 + crop.side > 1000 and crop.y0 < 300 and crop.y0 + crop.side > 500
    edge = choose_crop(np.array([[10, 10, 210, 210]] * 10, dtype=float), 640, 480, 256)
    assert edge.x0 == 0 and edge.y0 == 0
    assert np.allclose(crop.to_output([crop.x0, crop.y0]), 0) and np.allclose(crop.to_output([crop.x0 + crop.side, crop.y0 + crop.side]), 512)


# --- steps ---------------------------------------------------------------------------------------


def test_face_tracker_keeps_the_largest_face_and_warns(subject):
    gray = cv2.cvtColor(subject.frame(0), cv2.COLOR_RGB2GRAY)
    canvas = np.full((SIZE, 2 * SIZE), 128, np.uint8)
    canvas[:, :SIZE] = gray
    canvas[40:200, SIZE + 40 : SIZE + 200] = cv2.resize(gray[20:240, 18:238], (160, 160), interpolation=cv2.INTER_AREA)  # a smaller second face
    with pytest.warns(MultipleFacesWarning, match="more than one face"):
        points = track_landmarks([canvas] * 6, 6)
    truth = np.asarray(subject.array("landmarks2d", ground_truth=True))[0]
    assert np.linalg.norm(points[-1] - truth, axis=-1).mean() < 3, "the larger (left) face is tracked"


def test_dropouts_short_interpolated_long_reported():
    landmarks = np.tile(np.arange(136, dtype=float).reshape(1, 68, 2), (100, 1, 1)) + np.arange(100)[:, None, None]
    holed = landmarks.copy()
    holed[10:15] = np.nan  # 0.2 s: filled silently
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        filled, long = fill_dropouts(holed, 25)
    assert long == [] and np.allclose(filled, landmarks)
    holed[40:80] = np.nan  # 1.6 s: filled, and reported
    with pytest.warns(FaceDropoutWarning, match="1.6-3.2 s"):
        filled, long = fill_dropouts(holed, 25, "clip.mp4")
    assert long == [(40, 80)] and np.allclose(filled, landmarks)
    with pytest.raises(ThkitError, match="clip.mp4: no face found"):
        fill_dropouts(np.full((10, 68, 2), np.nan), 25, "clip.mp4")


def test_pose_fit_recovers_known_poses_and_ignores_outliers():
    rng = np.random.default_rng(0)
    n = 400
    t = np.arange(n) / 25
    rotations = Rotation.from_euler("YXZ", np.stack([12 * np.sin(0.9 * t), 8 * np.sin(1.3 * t + 1), 4 * np.sin(0.5 * t)], 1), degrees=True).as_matrix()
    translations = np.stack([0.2 * np.sin(0.3 * t), 0.1 * np.cos(0.2 * t), -10 + 0.3 * np.sin(0.1 * t)], axis=1)
    shape = GENERIC_FACE * 1.04 + rng.normal(0, 0.02, GENERIC_FACE.shape)
    truth = HeadFit(rotations, translations, shape, 1000.0, 256, 256)
    landmarks = truth.project(shape) + rng.normal(0, 0.5, (n, 68, 2))
    landmarks[rng.integers(0, n, 20), RIGID[rng.integers(0, len(RIGID), 20)]] += 25  # tracking slips
    start = time.perf_counter()
    fit = fit_head(landmarks, 256, 256, focal_guess(landmarks))
    assert time.perf_counter() - start < 20
    aligned, _ = _rotation_errors(np.transpose(fit.rotations, (0, 2, 1)), np.transpose(rotations, (0, 2, 1)))
    assert aligned.mean() < 1.0  # 0.84 here; 1.46 if the slips were not down-weighted
    assert abs(fit.focal / 1000 - 1) < 0.3
    assert np.median(fit.reprojection_error(landmarks)) < 1.0
    back = landmarks_3d(landmarks, fit)
    assert np.allclose(fit.project(back), landmarks, atol=1e-6), "3D landmarks re-project onto the 2D ones"


def test_mean_face_has_plausible_proportions():
    face = GENERIC_FACE
    assert face.shape == (68, 3)
    assert np.isclose(np.linalg.norm(face[45] - face[36]), 0.9)
    mirror = face * [-1, 1, 1]
    assert np.allclose(mirror[[16, 26, 45, 54, 35]], face[[0, 17, 36, 48, 31]]), "symmetric about x = 0"
    assert 1.0 < np.linalg.norm(face[27] - face[8]) < 1.35, "nasion to chin about 12 cm"
    assert face[30, 2] == face[:, 2].max(), "the nose tip is the most forward point"
    assert abs(face[36:48, 1].mean()) < 0.02, "origin at eye height"
    assert np.isclose(signals.eye_aspect_ratio(face[None])[0], 0.3, atol=0.03), "dlib's open-eye EAR"


def test_models_are_found_through_importlib():
    path = model_file(SHAPE_PREDICTOR)
    assert path.is_file() and path.stat().st_size > 50_000_000
    with pytest.raises(ThkitError, match="missing from face_recognition_models"):
        model_file("no_such_model.dat")


def test_signals_measure_eyes_and_mouth():
    face = np.repeat(GENERIC_FACE[None], 30, axis=0).copy()
    lids = np.linspace(1, 0, 30)  # open .. shut
    for upper, lower in ((37, 41), (38, 40), (43, 47), (44, 46)):
        middle = (face[:, upper] + face[:, lower]) / 2
        face[:, upper] = middle + (face[:, upper] - middle) * lids[:, None]
        face[:, lower] = middle + (face[:, lower] - middle) * lids[:, None]
    blink = signals.blink(face)
    assert np.allclose(blink, np.clip(1 - lids / np.median(lids), 0, 1), atol=1e-6)
    assert blink[-1] == 1 and blink[0] == 0
    opened = GENERIC_FACE.copy()
    opened[[65, 66, 67], 1] -= 0.117  # lower inner lip down by a tenth of the face's height
    mouth = signals.mouth(np.stack([GENERIC_FACE, opened]))
    assert mouth[0] < 0.01 and np.isclose(mouth[1] - mouth[0], 0.1, atol=0.005)
    boxes = signals.lip_boxes(GENERIC_FACE[None, :, :2] * [100, -100] + 200, 400, 400)
    assert np.isclose(boxes[0, 2] - boxes[0, 0], boxes[0, 3] - boxes[0, 1])


def test_moving_camera_warns(subject):
    picks = range(0, len(subject), len(subject) // 12)
    samples = [subject.frame(i) for i in picks]
    points = np.asarray(subject.array("landmarks2d", ground_truth=True))[list(picks)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", MovingCameraWarning)
        _, _, facts = masks.background_plate(samples, points, "still.mp4")
    assert facts["background_changing"] < 0.05
    scene = skimage.data.coffee()  # a textured room behind the subject, the camera panning across it
    panned = [np.where(subject.mask(i)[..., None] > 0, rgb, scene[40 : 40 + SIZE, 12 * k : 12 * k + SIZE]) for k, (i, rgb) in enumerate(zip(picks, samples))]
    with pytest.warns(MovingCameraWarning, match="pan.mp4: the background changes"):
        masks.background_plate(panned, points, "pan.mp4")


def test_step_store_reuses_results_and_replays_warnings(tmp_path):
    calls = []

    def step() -> StepResult:
        calls.append(1)
        warnings.warn("half the frames are dark", PreprocessWarning)
        return StepResult({"x": np.arange(3)}, {"n": 3})

    store = StepStore(tmp_path, {"video": "a.mp4"})
    with pytest.warns(PreprocessWarning):
        first = store.run("thing", step)
    with pytest.warns(PreprocessWarning, match="half the frames are dark"):
        again = StepStore(tmp_path, {"video": "a.mp4"}).run("thing", step)
    assert len(calls) == 1 and again.facts == first.facts and np.array_equal(again.arrays["x"], [0, 1, 2])
    assert store.log() == ["thing"]
    with pytest.warns(PreprocessWarning, match="starting over"):
        fresh = StepStore(tmp_path, {"video": "b.mp4"})
    assert not fresh.done("thing")
