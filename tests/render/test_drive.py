"""Poses, blinks and frame ids for new audio: mirrored replay and --poses files."""

from __future__ import annotations

import numpy as np
import pytest

from thkit.core.errors import ThkitError
from thkit.render.drive import UNSEEN, Drive, load_poses, mirror_indices


def test_mirror_goes_forwards_then_backwards_without_repeating_the_turns():
    assert mirror_indices(12, 4).tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1]
    assert mirror_indices(3, 5).tolist() == [0, 1, 2]  # shorter audio: the start of the sequence
    assert mirror_indices(4, 1).tolist() == [0, 0, 0, 0]
    assert mirror_indices(0, 3).tolist() == []
    steps = np.abs(np.diff(mirror_indices(1000, 7)))
    assert (steps == 1).all()  # never a jump


def test_mirror_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        mirror_indices(3, 0)


def test_replayed_training_frames_keep_their_ids():
    drive = Drive.replay(7, range(10, 14), train=range(0, 14))
    assert drive.rows.tolist() == [10, 11, 12, 13, 12, 11, 10]
    assert drive.frame_ids.tolist() == drive.rows.tolist()
    assert drive.poses is None and drive.n_frames == 7


def test_frames_outside_training_and_file_poses_get_the_unseen_id():
    val = Drive.replay(3, range(20, 23), train=range(0, 20))
    assert val.rows.tolist() == [20, 21, 22] and val.frame_ids.tolist() == [UNSEEN] * 3
    poses = np.tile(np.eye(4, dtype=np.float32), (5, 1, 1))
    posed = Drive.replay(4, range(0, 20), train=range(0, 20), poses=poses)
    assert posed.frame_ids.tolist() == [UNSEEN] * 4
    assert posed.poses.shape == (4, 4, 4) and posed.rows.tolist() == [0, 1, 2, 3]


def test_poses_file_is_read_and_trimmed(tmp_path):
    poses = np.tile(np.eye(4), (6, 1, 1))
    poses[:, 2, 3] = np.arange(6)
    np.save(tmp_path / "poses.npy", poses)
    loaded = load_poses(tmp_path / "poses.npy", 4)
    assert loaded.dtype == np.float32 and loaded.shape == (4, 4, 4)
    assert loaded[:, 2, 3].tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((5, 3, 4)), "shape [5, 3, 4], expected [frames, 4, 4]"),
        (np.zeros((5, 16)), "shape [5, 16], expected [frames, 4, 4]"),
        (np.tile(np.eye(4), (2, 1, 1)), "2 poses for 4 video frames"),
        (np.full((4, 4, 4), np.nan), "NaN or infinite"),
        (np.zeros((4, 4, 4)), "last row of every matrix must be [0, 0, 0, 1]"),
        (np.array(["a"] * 64).reshape(4, 4, 4), "expected floats"),
    ],
)
def test_bad_poses_files_say_what_is_wrong(tmp_path, array, message):
    np.save(tmp_path / "poses.npy", array)
    with pytest.raises(ThkitError) as error:
        load_poses(tmp_path / "poses.npy", 4)
    assert message in error.value.message
    assert "[frames, 4, 4]" in error.value.format()


def test_missing_and_unreadable_poses_files(tmp_path):
    with pytest.raises(ThkitError, match="no such file"):
        load_poses(tmp_path / "absent.npy", 4)
    (tmp_path / "text.npy").write_text("not numpy")
    with pytest.raises(ThkitError, match="not a readable .npy file"):
        load_poses(tmp_path / "text.npy", 4)
