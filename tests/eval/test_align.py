"""Pairing frames by time: equal clips, other frame rates, other lengths, other sizes, and loading the truth."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from tests.eval.conftest import write_video
from thkit.core.errors import ThkitError
from thkit.eval.align import Clip, align, dataset_clip, dataset_frames, truth_clip, video_clip


def numbered(n_frames: int, fps: Fraction | int, source: str, size: tuple[int, int] = (4, 6), audio: np.ndarray | None = None) -> Clip:
    """A clip whose frame i is filled with the value i, so a paired frame says which frame it was."""
    frames = np.broadcast_to(np.arange(n_frames, dtype=np.uint8)[:, None, None, None], (n_frames, *size, 3)).copy()
    return Clip(frames, Fraction(fps), source, audio)


def test_equal_clips_pair_frame_by_frame():
    pair = align(numbered(50, 25, "pred.mp4"), numbered(50, 25, "gt.mp4"))
    assert pair.n_frames == 50 and pair.fps == 25 and pair.notes == ()
    np.testing.assert_array_equal(pair.pred_index, np.arange(50))
    np.testing.assert_array_equal(pair.truth_index, np.arange(50))
    np.testing.assert_array_equal(pair.pred[:, 0, 0, 0], pair.truth[:, 0, 0, 0])


def test_a_faster_truth_is_sampled_at_the_prediction_frames_centre_times():
    """25 fps against 50 fps: aligned frame k shows time (k + 1/2) / 25, which is 50 fps frame 2k + 1."""
    pair = align(numbered(50, 25, "pred.mp4"), numbered(100, 50, "gt.mp4"))
    assert pair.fps == 25 and pair.n_frames == 50
    np.testing.assert_array_equal(pair.truth[:, 0, 0, 0], 2 * np.arange(50) + 1)
    np.testing.assert_array_equal(pair.pred[:, 0, 0, 0], np.arange(50))
    assert pair.notes == ("50 fps resampled to 25 fps by time",)


def test_ntsc_against_25_fps_uses_exact_rational_time():
    """A 29.97 fps prediction against 25 fps truth: the prediction is the one resampled, each aligned
    frame the one on screen at the 25 fps frame's centre, with no drift over a minute."""
    ntsc = Fraction(30000, 1001)
    pred, truth = numbered(1799, ntsc, "pred.mp4", size=(1, 1)), numbered(1500, 25, "gt.mp4", size=(1, 1))
    pair = align(pred, truth)
    k = np.arange(1500)
    expected = [int((Fraction(int(i)) + Fraction(1, 2)) / 25 * ntsc) for i in k]  # floor of the centre time in NTSC frames
    assert pair.fps == 25 and pair.n_frames == 1500
    np.testing.assert_array_equal(pair.pred_index, expected)
    np.testing.assert_array_equal(pair.truth_index, k)
    assert pair.pred_index[-1] == 1797  # the last NTSC frame: one minute later, still in step


def test_lengths_within_two_frames_are_one_clip():
    pair = align(numbered(49, 25, "pred.mp4"), numbered(51, 25, "gt.mp4"))
    assert pair.n_frames == 49 and pair.notes == ()


def test_different_lengths_are_refused_naming_both_files_or_trimmed_when_asked():
    with pytest.raises(ThkitError) as error:
        align(numbered(30, 25, "out/val.mp4"), numbered(75, 25, "data/video.mp4"))
    message = error.value.format()
    assert "out/val.mp4 lasts 1.20 s (30 frames at 25 fps)" in message and "data/video.mp4 lasts 3.00 s (75 frames at 25 fps)" in message
    assert "--trim" in message
    pair = align(numbered(30, 25, "out/val.mp4"), numbered(75, 25, "data/video.mp4"), trim=True)
    assert pair.n_frames == 30 and pair.notes == ("trimmed to the common 1.20 s",)
    np.testing.assert_array_equal(pair.truth[:, 0, 0, 0], np.arange(30))  # the common start, frame for frame


def test_different_sizes_are_refused_or_resized_when_asked():
    pred, truth = numbered(10, 25, "pred.mp4", size=(8, 8)), numbered(10, 25, "gt.mp4", size=(4, 4))
    with pytest.raises(ThkitError, match=r"pred.mp4 has 8 x 8 px frames but gt.mp4 has 4 x 4 px") as error:
        align(pred, truth)
    assert "--resize" in error.value.format()
    pair = align(pred, truth, resize=True)
    assert pair.pred.shape == pair.truth.shape == (10, 4, 4, 3)
    np.testing.assert_array_equal(pair.pred[:, 0, 0, 0], np.arange(10))  # uniform frames stay what they were
    assert "prediction resized from 8 x 8 to 4 x 4 px" in pair.notes


def test_the_audio_is_the_predictions_else_the_truths():
    sound = np.ones(16000, dtype=np.float32)
    assert align(numbered(25, 25, "p", audio=sound), numbered(25, 25, "t")).audio is sound
    assert align(numbered(25, 25, "p"), numbered(25, 25, "t", audio=sound)).audio is sound
    assert align(numbered(25, 25, "p"), numbered(25, 25, "t")).audio is None


def test_a_video_file_is_read_with_its_audio(tmp_path, subject, subject_frames):
    audio = subject.audio()
    path = write_video(tmp_path / "clip.mp4", subject_frames[:20], Fraction(25), audio[: 20 * 640])
    clip = video_clip(path)
    assert clip.frames.shape == (20, 96, 96, 3) and clip.fps == 25 and clip.source == str(path)
    assert clip.audio is not None and clip.audio.shape == (20 * 640,)
    assert np.corrcoef(clip.audio, audio[: 20 * 640])[0, 1] > 0.95  # AAC, but the same sound
    assert float(np.abs(clip.frames.astype(int) - subject_frames[:20]).mean()) < 3  # H.264 at CRF 18


@pytest.mark.parametrize(
    ("content", "expected"),
    [(None, "no such file"), (b"", "not a readable video"), (b"not a video at all", "not a readable video")],
)
def test_unreadable_videos_are_user_errors(tmp_path, content, expected):
    path = tmp_path / "pred.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ThkitError, match=expected) as error:
        video_clip(path)
    assert str(path) in error.value.format()


def test_a_dataset_gives_the_split_that_lasts_as_long(subject, subject_frames):
    meta = subject.meta
    val = numbered(len(meta.val_frames), 25, "val.mp4")
    assert dataset_frames(subject, val, "auto") == meta.val_frames
    assert dataset_frames(subject, numbered(75, 25, "all.mp4"), "auto") == range(75)
    assert dataset_frames(subject, val, "all") == range(75)
    with pytest.raises(ThkitError, match=r"lasts 0.80 s \(20 frames at 25 fps\), and no split of the dataset") as error:
        dataset_frames(subject, numbered(20, 25, "odd.mp4"), "auto")
    assert "--split val|all" in error.value.format()
    truth = dataset_clip(subject, meta.val_frames)
    first = meta.val_frames.start
    np.testing.assert_array_equal(truth.frames, subject_frames[first:])
    np.testing.assert_array_equal(truth.audio, subject.audio()[first * 640 : 75 * 640])  # from the split's first frame


def test_a_folder_that_is_neither_dataset_nor_run_is_refused(tmp_path):
    with pytest.raises(ThkitError, match="neither a thkit dataset"):
        truth_clip(tmp_path, numbered(10, 25, "pred.mp4"))
