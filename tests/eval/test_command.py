"""`thkit eval` as a user runs it, through thkit's entry point (the hook adds the command) in click's CliRunner."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner

from tests.eval.conftest import write_video
from thkit.eval.image import PSNR_CAP_DB

pytestmark = pytest.mark.usefixtures("no_weights")


def thkit(*args: object) -> tuple[int, str, str]:
    """Run `thkit ARGS` as its console script does (`thkit.cli.main`): exit status, stdout, stderr."""
    from thkit.cli import main

    with CliRunner().isolation() as (stdout, stderr, _):
        try:
            main([str(arg) for arg in args])
            status = 0
        except SystemExit as exit:
            status = exit.code if isinstance(exit.code, int) else 1
        return status, stdout.getvalue().decode(), stderr.getvalue().decode()


@pytest.fixture(scope="module")
def val_video(subject, subject_frames, tmp_path_factory) -> Path:
    """The subject's validation frames with their audio, as a render of the validation split would be."""
    frames = subject.meta.val_frames
    audio = subject.audio()[frames.start * 640 : frames.stop * 640]
    return write_video(tmp_path_factory.mktemp("pred") / "val.mp4", subject_frames[frames.start : frames.stop], Fraction(25), audio)


def test_eval_is_registered_through_the_hook_like_any_plugin():
    from thkit.cli import cli
    from thkit.core import hooks

    manager = hooks.plugin_manager()
    plugin = manager.get_plugin("eval")
    assert plugin is not None and plugin.__name__ == "thkit.eval.command"
    manager.hook.register_commands(cli=cli)
    assert cli.commands["eval"] is plugin.eval_command


def test_video_against_its_dataset_prints_the_table_and_writes_json_and_report(subject, val_video, tmp_path):
    status, out, err = thkit("eval", val_video, subject.root, "--json", tmp_path / "out.json", "--report", tmp_path / "report")
    assert status == 0, err
    assert "PSNR" in out and "LMD, mouth" in out and "frames" in out and "skipped:" in out
    data = json.loads((tmp_path / "out.json").read_text())
    video = data["videos"]["val.mp4"]
    assert video["truth"] == f"{subject.root} frames 69-74"  # the validation split, found by its length
    assert len(video["per_frame"]) == 6 and video["metrics"]["frames"] == 6
    assert 30 < video["metrics"]["psnr"] < PSNR_CAP_DB  # H.264 against the dataset's JPEGs: close, not equal
    assert (tmp_path / "report" / "report.md").is_file() and (tmp_path / "report" / "val.mp4-worst.png").is_file()


@pytest.mark.parametrize("content", [None, b"garbage"])
def test_an_unreadable_prediction_exits_2_without_a_traceback(subject, tmp_path, content):
    pred = tmp_path / "pred.mp4"
    if content is not None:
        pred.write_bytes(content)
    status, _, err = thkit("eval", pred, subject.root)
    assert status == 2 and "Traceback" not in err
    assert str(pred) in err and ("no such file" if content is None else "not a readable video") in err


def test_clips_of_different_lengths_exit_2_saying_what_to_do(subject, val_video):
    status, _, err = thkit("eval", val_video, subject.root / "video.mp4")
    assert status == 2 and "Traceback" not in err
    assert "lasts 0.24 s" in err and "lasts 3.00 s" in err and "--trim" in err


def test_missing_truth_is_a_usage_error(val_video):
    status, _, err = thkit("eval", val_video)
    assert status == 2 and "give the truth" in err


def test_run_folder_as_truth_and_driven_by_new_audio(tiny_run, tmp_path):
    """The tiny run's validation frames as the prediction against the run; then the run driven by two files."""
    from thkit.eval.align import run_dataset

    dataset = run_dataset(tiny_run)
    val = dataset.meta.val_frames
    frames = np.stack([dataset.frame(index) for index in val])
    pred = write_video(tmp_path / "val.mp4", frames, Fraction(25), dataset.audio()[val.start * 640 : val.stop * 640])
    status, out, err = thkit("eval", pred, tiny_run, "--json", tmp_path / "pair.json")
    assert status == 0, err
    metrics = json.loads((tmp_path / "pair.json").read_text())["videos"]["val.mp4"]["metrics"]
    assert metrics["frames"] == len(val)
    assert metrics["sync_cosine"] == "skipped: no face found in any frame"  # 64 px: below dlib's reach, said as such

    audio = dataset.audio()
    soundfile.write(tmp_path / "a.wav", audio[:16000], 16000)  # 25 frames
    soundfile.write(tmp_path / "b.wav", audio[8000:20800], 16000)  # 20 frames
    drives = ("--drive", tmp_path / "a.wav", "--drive", tmp_path / "b.wav")
    status, out, err = thkit("eval", tiny_run, *drives, "--json", tmp_path / "drive.json", "--report", tmp_path / "report")
    assert status == 0, err
    assert "a.wav" in out and "b.wav" in out
    data = json.loads((tmp_path / "drive.json").read_text())
    assert data["mode"] == "drive" and list(data["videos"]) == ["a.wav", "b.wav"]
    assert [video["metrics"]["frames"] for video in data["videos"].values()] == [25, 20]
    assert all(video["drive"].endswith(name) for name, video in data["videos"].items())
    assert all("sync_cosine" in video["metrics"] and "envelope_correlation" in video["metrics"] for video in data["videos"].values())
    assert sorted(path.name for path in (tmp_path / "report").glob("*.mp4")) == ["01-a.mp4", "02-b.mp4"]
    assert "[01-a.mp4](01-a.mp4)" in (tmp_path / "report" / "report.md").read_text()


def test_drive_takes_no_truth(tiny_run, tmp_path):
    status, _, err = thkit("eval", tiny_run, tmp_path / "gt.mp4", "--drive", tmp_path / "a.wav")
    assert status == 2 and "with --drive, give only the RUN folder" in err
