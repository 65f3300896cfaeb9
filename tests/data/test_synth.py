"""The synthetic subject: files and counts, ground truth consistency, determinism, lip sync, video."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from thkit.core.errors import ThkitError
from thkit.data.layout import ARRAYS, Dataset
from thkit.data.synth import HELD_OUT_TEXT, MAX_SECONDS, STORY, generate, speak_held_out
from thkit.data.synth.portrait import PHOTO_LANDMARKS, build_head, mouth_opening
from thkit.data.synth.visemes import BILABIALS, OPEN_VOWELS

SECONDS = 6.3  # not a whole number of frames: the clip is floor(6.3 * 25) = 157 frames
SIZE = 128
FRAMES = 157


def _shape_predictor() -> str:
    """dlib's 68-point model from face_recognition_models (whose __init__ needs pkg_resources: not imported)."""
    import importlib.util

    folder = importlib.util.find_spec("face_recognition_models").submodule_search_locations[0]
    return str(Path(folder) / "models" / "shape_predictor_68_face_landmarks.dat")


@pytest.fixture(scope="module")
def subject(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("synth") / "subject", seconds=SECONDS, size=SIZE, seed=0, progress=False)


@pytest.fixture(scope="module")
def dataset(subject: Path) -> Dataset:
    return Dataset(subject)


def test_counts_and_shapes(subject: Path, dataset: Dataset) -> None:
    meta = dataset.meta
    assert (meta.n_frames, meta.height, meta.width, meta.fps) == (FRAMES, SIZE, SIZE, 25)
    assert len(list((subject / "frames").glob("*.jpg"))) == FRAMES
    assert len(list((subject / "masks").glob("*.png"))) == FRAMES
    assert dataset.audio().shape == (FRAMES * 16000 // 25,)  # exactly the video's length
    assert dataset.frame(FRAMES - 1).shape == (SIZE, SIZE, 3)
    assert dataset.background.shape == (SIZE, SIZE, 3)
    for name, shape in ARRAYS.items():
        assert dataset.array(name).shape == (FRAMES, *shape)
        np.testing.assert_array_equal(dataset.array(name), dataset.array(name, ground_truth=True))
    assert np.load(subject / "ground_truth" / "expression.npy").shape == (FRAMES, 6)
    assert meta.n_val == FRAMES // 11 and meta.train_frames.stop == meta.val_frames.start


def test_landmarks_project_through_poses(dataset: Dataset) -> None:
    """landmarks3d through the camera-to-world pose (OpenGL axes) and the intrinsics is landmarks2d."""
    poses = np.asarray(dataset.array("poses"), np.float64)
    points = np.asarray(dataset.array("landmarks3d"), np.float64)
    k = dataset.meta.intrinsics
    world_to_camera = np.linalg.inv(poses)
    camera = np.einsum("nij,nvj->nvi", world_to_camera[:, :3, :3], points) + world_to_camera[:, None, :3, 3]
    depth = -camera[..., 2]  # the camera looks along its -z
    projected = np.stack([k.cx + k.focal * camera[..., 0] / depth, k.cy - k.focal * camera[..., 1] / depth], axis=-1)
    assert np.abs(projected - dataset.array("landmarks2d")).max() < 0.5
    assert np.all(depth > 0)
    rotations = poses[:, :3, :3]
    assert np.abs(np.einsum("nij,nkj->nik", rotations, rotations) - np.eye(3)).max() < 1e-5  # orthonormal


def test_canonical_head_space(dataset: Dataset) -> None:
    """Outer eye corners about 0.9 dm apart, origin at eye height, face towards +z, pose-free landmarks."""
    points = np.asarray(dataset.array("landmarks3d"))
    corners = np.linalg.norm(points[:, 45] - points[:, 36], axis=-1)
    np.testing.assert_allclose(corners, 0.9, atol=0.01)
    assert abs(points[:, 36:48, 1].mean()) < 0.05
    assert points[:, 30, 2].min() > points[:, 0, 2].max()  # the nose tip is in front of the jaw's corners
    assert np.abs(points[:, 27:36] - points[:1, 27:36]).max() < 1e-6  # the nose never moves


def test_same_seed_same_subject_other_seed_differs(subject: Path, tmp_path: Path) -> None:
    """Deterministic for a seed, and a shorter clip is exactly the start of a longer one."""
    short = generate(tmp_path / "short", seconds=3, size=SIZE, seed=0, progress=False)
    other = generate(tmp_path / "other", seconds=3, size=SIZE, seed=1, progress=False)
    frames = 75
    for name in [*ARRAYS, "ground_truth/expression", "ground_truth/head_angles"]:
        np.testing.assert_array_equal(np.load(short / f"{name}.npy"), np.load(subject / f"{name}.npy")[:frames], err_msg=name)
    np.testing.assert_array_equal(Dataset(short).audio(), Dataset(subject).audio()[: frames * 640])
    for folder in ("frames", "masks"):
        for path in sorted((short / folder).iterdir()):
            assert path.read_bytes() == (subject / folder / path.name).read_bytes(), path
    assert not np.array_equal(np.load(short / "poses.npy"), np.load(other / "poses.npy"))
    assert not np.array_equal(Dataset(short).audio(), Dataset(other).audio())
    assert (short / "frames" / "000050.jpg").read_bytes() != (other / "frames" / "000050.jpg").read_bytes()


def test_head_motion_and_blinks(subject: Path, dataset: Dataset) -> None:
    angles = np.load(subject / "ground_truth" / "head_angles.npy")
    assert np.all(np.abs(angles) <= [10.01, 10.01, 5.01])
    assert np.all(angles.std(axis=0) > 0.2)  # it moves
    assert np.abs(np.diff(angles, axis=0)).max() < 1.5  # smoothly: under 1.5 degrees a frame
    blink = np.asarray(dataset.array("blink"))
    assert blink.min() == 0 and blink.max() > 0.99
    onsets = np.flatnonzero((blink[1:] > 0.5) & (blink[:-1] <= 0.5))
    assert 1 <= len(onsets) <= 4  # a blink every 2 to 6 s


def test_lips_follow_phones(subject: Path, dataset: Dataset) -> None:
    """Shut on m, b, p; open on open vowels; narrow on rounded ones: lips follow phones, not loudness."""
    record = json.loads((subject / "ground_truth" / "speech.json").read_text())
    mouth = np.asarray(dataset.array("mouth"))
    points = np.asarray(dataset.array("landmarks3d"))
    width = np.linalg.norm(points[:, 54] - points[:, 48], axis=-1)  # between the mouth corners

    def at_middles(labels: frozenset[str], values: np.ndarray) -> np.ndarray:
        middles = [(p["start"] + p["end"]) / 2 for p in record["phones"] if p["phone"] in labels]
        return values[[int(t * 25) for t in middles if t * 25 < FRAMES]]

    closed, opened = at_middles(BILABIALS, mouth), at_middles(OPEN_VOWELS, mouth)
    assert len(closed) >= 3 and len(opened) >= 3
    assert closed.max() < 0.01
    assert np.median(opened) > 0.06
    assert mouth.max() < 0.3
    rounded, spread = at_middles(frozenset({"UW", "OW", "W"}), width), at_middles(frozenset({"IY", "EY", "IH"}), width)
    assert len(rounded) >= 2 and len(spread) >= 2
    assert np.median(rounded) < np.median(spread) - 0.02


def test_transcript_is_what_the_clip_says(subject: Path) -> None:
    record = json.loads((subject / "ground_truth" / "speech.json").read_text())
    transcript = (subject / "ground_truth" / "transcript.txt").read_text().strip()
    assert (subject / "video.txt").read_text().strip() == transcript  # the sidecar of video.mp4
    assert Dataset(subject).transcript() == transcript  # audio.txt, which training's encoders read
    assert " ".join(STORY).startswith(transcript)
    last_begun = [p["word"] for p in record["phones"] if p["word"]][-1]
    assert transcript.split()[-1].strip(".,").lower() == last_begun


def test_video_file(subject: Path) -> None:
    import av

    with av.open(str(subject / "video.mp4")) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert video.codec_context.name == "h264" and video.average_rate == 25
        assert (video.codec_context.width, video.codec_context.height) == (SIZE, SIZE)
        assert audio.codec_context.name == "aac" and audio.rate == 16000
        assert abs(float(audio.duration * audio.time_base) - FRAMES / 25) < 0.05
        assert sum(1 for _ in container.decode(video=0)) == FRAMES


def test_masks_hold_every_label(dataset: Dataset) -> None:
    from scipy.ndimage import binary_fill_holes

    for index in range(FRAMES):  # the head never has a hole (a crack in the mesh, a gap at the lips)
        head = dataset.mask(index) == 2
        assert not np.any(binary_fill_holes(head) & ~head), f"frame {index}"
    for index in (0, FRAMES // 2, FRAMES - 1):
        mask = dataset.mask(index)
        counts = np.bincount(mask.ravel(), minlength=3)
        assert len(counts) == 3 and np.all(counts > 0.05 * mask.size)
        head = np.argwhere(mask == 2)
        points = dataset.array("landmarks2d")[index]
        rows = head[:, 0]
        assert rows.min() < points[:, 1].min() < points[:, 1].max() < rows.max() + 2  # hair above the brows, chin at the edge


def test_dlib_sees_the_face_where_the_truth_is(dataset: Dataset) -> None:
    """The render looks like a face: dlib finds it, and its 68 landmarks lie near the true ones."""
    import cv2
    import dlib

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(_shape_predictor())
    errors = []
    for index in range(0, FRAMES, 30):
        scale = 2  # HOG wants faces of 80 px or more; at 128 px the face is about 60
        image = cv2.resize(dataset.frame(index), None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        faces = detector(image, 1)
        assert len(faces) == 1, f"frame {index}: {len(faces)} faces"
        shape = predictor(image, faces[0])
        found = (np.array([(p.x, p.y) for p in shape.parts()]) + 0.5) / scale  # dlib's pixel centres are integers
        errors.append(np.linalg.norm(found - dataset.array("landmarks2d")[index], axis=1))
    errors = np.array(errors)
    assert np.median(errors) < 2.0 and np.percentile(errors, 90) < 4.0  # px at 128


def test_bad_requests_say_what_to_do(tmp_path: Path) -> None:
    cases = [
        dict(seconds=0),
        dict(seconds=-3),
        dict(seconds=MAX_SECONDS + 1),
        dict(seconds=0.01),
        dict(size=32),
        dict(size=255),
        dict(seed=-1),
    ]
    for case in cases:
        with pytest.raises(ThkitError) as caught:
            generate(tmp_path / "never", **{"seconds": 1, "size": 128, **case}, progress=False)
        assert caught.value.hint
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    with pytest.raises(ThkitError, match="already exists"):
        generate(tmp_path / "taken", seconds=1, size=128, progress=False)
    assert not (tmp_path / "never").exists()


def test_story_is_long_enough_and_alignable() -> None:
    import pocketsphinx

    dictionary = Path(pocketsphinx.get_model_path()) / "en-us" / "cmudict-en-us.dict"
    known = {line.split()[0].split("(")[0] for line in dictionary.read_text().splitlines() if line}
    words = [w for sentence in (*STORY, HELD_OUT_TEXT) for w in re.findall(r"[a-z']+", sentence.lower())]
    assert not [w for w in words if w not in known]
    assert len(words) > 3 * 60 * 2.5  # at well over 2.5 words a second: more than 3 minutes
    for sentence in STORY:  # a clip's transcript cuts sentences by counting aligned words
        assert len(sentence.split()) == len(re.findall(r"[a-z']+", sentence.lower())), sentence
    assert MAX_SECONDS >= 180
    assert HELD_OUT_TEXT not in " ".join(STORY)


def test_held_out_sentence_is_spoken() -> None:
    audio = speak_held_out()
    assert audio.dtype == np.float32 and 3 * 16000 < len(audio) < 12 * 16000
    assert np.abs(audio).max() > 0.1


def test_neutral_and_closed_lips_are_shut() -> None:
    head = build_head()
    expressions = np.zeros((3, 6))
    expressions[1] = [0.8, 0.5, 0.6, 0.2, 1.0, 0.0]  # jaw open and lips pressed (an m after a vowel)
    expressions[2] = [0.8, 0.5, 0.0, 0.0, 0.0, 0.0]
    opening = mouth_opening(head.pose_vertices(expressions)[:, :68])
    assert opening[0] == 0 and opening[1] < 1e-9 and opening[2] > 0.1


def test_photo_landmarks_are_dlibs() -> None:
    """The stored landmarks are what dlib finds on the portrait (before the documented fix-ups)."""
    import dlib
    from skimage import data

    image = data.astronaut()
    faces, scores, _ = dlib.get_frontal_face_detector().run(image, 1)
    best = faces[int(np.argmax(scores))]
    shape = dlib.shape_predictor(_shape_predictor())(image, best)
    found = np.array([(p.x, p.y) for p in shape.parts()])
    assert np.abs(found - PHOTO_LANDMARKS).max() <= 1


def test_thkit_synth_command(tmp_path: Path) -> None:
    """`thkit synth` as a user runs it."""
    import subprocess
    import sys

    def thkit(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "thkit", *args], capture_output=True, text=True, timeout=300)

    made = thkit("synth", "-o", str(tmp_path / "small"), "--seconds", "1", "--size", "64", "--seed", "3")
    assert made.returncode == 0, made.stderr
    assert Dataset(tmp_path / "small").meta.n_frames == 25 and (tmp_path / "small" / "video.mp4").is_file()
    refused = thkit("synth", "-o", str(tmp_path / "tiny"), "--size", "32")
    assert refused.returncode == 2 and "--size" in refused.stderr and "Traceback" not in refused.stderr
