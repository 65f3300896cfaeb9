"""Reading ER-NeRF / AD-NeRF / RAD-NeRF data folders: built here from a synthetic subject, as their
`process.py` would write it, then imported and compared with the subject's ground truth."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from thkit.core.errors import ThkitError
from thkit.data.ernerf import import_ernerf
from thkit.data.layout import Dataset

BFM_CENTROID = np.array([0.02, -0.35, 0.55])  # dm, where the folder's world origin sits in thkit head space


def write_ernerf_folder(subject: Dataset, folder: Path, *, head_colour: str = "blue") -> Path:
    """The subject in ER-NeRF's layout: metres around a shifted origin, BGR-written parsing, integer-centred .lms."""
    (folder / "ori_imgs").mkdir(parents=True)
    (folder / "parsing").mkdir()
    poses = np.asarray(subject.array("poses", ground_truth=True), dtype=np.float64)
    landmarks = np.asarray(subject.array("landmarks2d", ground_truth=True), dtype=np.float64)
    head, torso = ((255, 0, 0), (0, 0, 255)) if head_colour == "blue" else ((0, 0, 255), (255, 0, 0))  # BGR arrays
    frames = []
    for i in range(len(subject)):
        shutil.copy(subject.frame_path(i), folder / "ori_imgs" / f"{i}.jpg")
        np.savetxt(folder / "ori_imgs" / f"{i}.lms", landmarks[i] - 0.5, "%f")
        labels = subject.mask(i)
        coded = np.full((*labels.shape, 3), 255, np.uint8)
        coded[labels == 2], coded[labels == 1] = head, torso
        cv2.imwrite(str(folder / "parsing" / f"{i}.png"), coded)
        theirs = poses[i].copy()
        theirs[:3, 3] = (theirs[:3, 3] - BFM_CENTROID) / 10
        frames.append({"img_id": i, "aud_id": i, "transform_matrix": theirs.tolist()})
    split = len(frames) - len(frames) // 11
    intrinsics = subject.meta.intrinsics
    for name, part in (("train", frames[:split]), ("val", frames[split:])):
        record = {"focal_len": intrinsics.focal, "cx": intrinsics.cx, "cy": intrinsics.cy, "frames": part}
        (folder / f"transforms_{name}.json").write_text(json.dumps(record, indent=2))
    cv2.imwrite(str(folder / "bc.jpg"), subject.background[..., ::-1])
    shutil.copy(subject.root / "audio.wav", folder / "aud.wav")
    return folder


@pytest.fixture(scope="module")
def subject(tmp_path_factory) -> Dataset:
    from thkit.data.synth import generate

    return Dataset(generate(tmp_path_factory.mktemp("subject") / "subject", seconds=6, size=192, seed=1, progress=False))


@pytest.fixture(scope="module")
def folder(subject, tmp_path_factory) -> Path:
    return write_ernerf_folder(subject, tmp_path_factory.mktemp("ernerf") / "may")


def test_import_recovers_the_subject(subject, folder, tmp_path):
    dataset = import_ernerf(folder, tmp_path / "imported", progress=False)
    truth = lambda name: np.asarray(subject.array(name, ground_truth=True))  # noqa: E731
    assert len(dataset) == len(subject) and dataset.meta.n_val == subject.meta.n_val and dataset.meta.fps == 25
    assert dataset.meta.intrinsics == subject.meta.intrinsics
    assert np.array_equal(dataset.frame(5), subject.frame(5)), "frames are copied, not re-encoded"
    assert np.abs(np.asarray(dataset.array("landmarks2d")) - truth("landmarks2d")).max() < 1e-4
    poses, expected = np.asarray(dataset.array("poses")), truth("poses")
    assert np.abs(poses[:, :3, :3] - expected[:, :3, :3]).max() < 1e-5, "rotations carry over unchanged"
    offset = np.array(dataset.meta.extra["ernerf"]["origin_offset_dm"])
    assert np.linalg.norm(offset - BFM_CENTROID) < 0.1, "the origin offset is recovered from the landmarks"
    assert np.abs(poses[:, :3, 3] - expected[:, :3, 3]).max() < 0.1, "translations in dm, in thkit head space"
    assert all(np.array_equal(dataset.mask(i), subject.mask(i)) for i in range(0, len(dataset), 7))
    assert np.array_equal(dataset.background, cv2.imread(str(folder / "bc.jpg"))[..., ::-1])
    assert dataset.audio().shape == subject.audio().shape
    landmarks3d = np.asarray(dataset.array("landmarks3d"))
    assert np.linalg.norm(landmarks3d - truth("landmarks3d"), axis=-1).mean() < 0.06  # dm
    for name in ("blink", "mouth"):
        assert np.corrcoef(np.asarray(dataset.array(name)), truth(name))[0, 1] > 0.95
    assert dataset.meta.extra["ernerf"]["head_colour"] == "blue"
    assert dataset.meta.extra["ernerf"]["reprojection_px_mean"] < 0.5


def test_rgb_coded_parsing_from_forks_is_recognised(subject, tmp_path):
    folder = write_ernerf_folder(subject, tmp_path / "fork", head_colour="red")
    dataset = import_ernerf(folder, tmp_path / "imported", progress=False)
    assert dataset.meta.extra["ernerf"]["head_colour"] == "red"
    assert np.array_equal(dataset.mask(3), subject.mask(3))


@pytest.mark.parametrize("plate", ["bc.jpg", "estimated"])
def test_missing_parsing_and_landmarks_are_made_here(subject, folder, tmp_path, plate):
    bare = shutil.copytree(folder, tmp_path / "bare")
    shutil.rmtree(bare / "parsing")
    if plate == "estimated":
        (bare / "bc.jpg").unlink()
    for lms in (bare / "ori_imgs").glob("*.lms"):
        lms.unlink()
    dataset = import_ernerf(bare, tmp_path / "imported", progress=False)
    error = np.linalg.norm(np.asarray(dataset.array("landmarks2d")) - np.asarray(subject.array("landmarks2d", ground_truth=True)), axis=-1)
    assert error.mean() < 2.5, "tracked with dlib"
    ious = []
    for i in range(0, len(dataset), 10):
        ours, theirs = dataset.mask(i) > 0, subject.mask(i) > 0
        ious.append((ours & theirs).sum() / (ours | theirs).sum())
    assert np.mean(ious) > 0.9, f"masks from the background plate ({plate})"


def test_some_missing_lms_are_interpolated(subject, folder, tmp_path):
    holed = shutil.copytree(folder, tmp_path / "holed")
    for i in (10, 11, 12):
        (holed / "ori_imgs" / f"{i}.lms").unlink()
    dataset = import_ernerf(holed, tmp_path / "imported", progress=False)
    error = np.abs(np.asarray(dataset.array("landmarks2d"))[10:13] - np.asarray(subject.array("landmarks2d", ground_truth=True))[10:13])
    assert np.isfinite(error).all() and error.max() < 3


def test_bad_folders_are_errors(folder, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(ThkitError, match="taken already exists"):
        import_ernerf(folder, tmp_path / "taken", progress=False)
    with pytest.raises(ThkitError, match="no transforms_train.json"):
        import_ernerf(tmp_path, tmp_path / "out", progress=False)
    broken = shutil.copytree(folder, tmp_path / "broken")
    (broken / "ori_imgs" / "3.jpg").unlink()
    with pytest.raises(ThkitError, match="1 frames listed in the transforms are missing"):
        import_ernerf(broken, tmp_path / "out2", progress=False)
    (broken / "transforms_train.json").write_text("{not json")
    with pytest.raises(ThkitError, match="unreadable transforms"):
        import_ernerf(broken, tmp_path / "out3", progress=False)
    silent = shutil.copytree(folder, tmp_path / "silent")
    (silent / "aud.wav").unlink()
    with pytest.raises(ThkitError, match="no aud.wav"):
        import_ernerf(silent, tmp_path / "out4", progress=False)
