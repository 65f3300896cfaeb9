"""`render_run` on a tiny trained run: an mp4 with both streams in sync, the input audio in it, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
import soxr

from thkit.audio.decode import load_audio
from thkit.core.errors import ThkitError
from thkit.data.layout import Dataset
from thkit.render import render_run
from thkit.render.video import read_video

SECONDS = 1.3


@pytest.fixture(scope="module")
def speech(tiny_run, tmp_path_factory) -> Path:
    """1.3 s of the subject's own speech as 44.1 kHz stereo: another rate and layout than training's."""
    audio = dataset_of(tiny_run).audio()[: int(SECONDS * 16000)]
    stereo = soxr.resample(audio, 16000, 44100)
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    soundfile.write(path, np.stack([stereo, 0.5 * stereo], axis=1), 44100)
    return path


@pytest.fixture(scope="module")
def rendered(tiny_run, speech, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("out") / "out.mp4"
    assert render_run(tiny_run, out, audio_path=speech, progress=False) == out
    return out


def dataset_of(run: Path) -> Dataset:
    return Dataset(json.loads((run / "run.json").read_text())["dataset"])


def decode_audio(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.concatenate([frame.to_ndarray().reshape(-1) for frame in container.decode(audio=0)])


def test_video_has_a_frame_per_video_frame_of_audio_and_both_streams_last_as_long(rendered, speech):
    expected = load_audio(speech, 16000)
    frames, fps = read_video(rendered)
    assert fps == 25 and frames.shape == (len(expected) * 25 // 16000, 64, 64, 3)
    with av.open(str(rendered)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert video.codec_context.name == "h264" and audio.codec_context.name == "aac"
        video_seconds = float(video.duration * video.time_base)
        audio_seconds = float(audio.duration * audio.time_base)
    assert video_seconds == pytest.approx(frames.shape[0] / 25)
    assert audio_seconds == pytest.approx(len(expected) / 16000, abs=1e-3)
    assert 0 <= audio_seconds - video_seconds < 1 / 25  # within one frame


def test_the_audio_in_the_video_is_the_input_audio_in_sync(rendered, speech):
    expected = load_audio(speech, 16000)
    decoded = decode_audio(rendered)
    assert len(decoded) >= len(expected)  # AAC pads the last frame; the encoder delay is trimmed
    decoded = decoded[: len(expected)]
    lags = np.arange(-40, 41)
    scores = [np.dot(np.roll(decoded, -lag), expected) for lag in lags]
    assert lags[int(np.argmax(scores))] == 0
    assert np.corrcoef(decoded, expected)[0, 1] > 0.98


def test_frames_are_drawn_over_the_background_plate(rendered, tiny_run):
    frames, _ = read_video(rendered)
    assert frames.std() > 1  # not one flat colour
    assert not np.array_equal(frames[0], frames[-1]) or frames.shape[0] == 1


def test_poses_from_a_file_drive_the_camera(tiny_run, speech, rendered, tmp_path):
    frames = len(load_audio(speech, 16000)) * 25 // 16000
    poses = np.asarray(dataset_of(tiny_run).array("poses"))[:1]
    moved = np.repeat(poses, frames + 3, axis=0)
    moved[:, 0, 3] += 0.5  # the camera half a decimetre to the side
    np.save(tmp_path / "poses.npy", moved)
    render_run(tiny_run, tmp_path / "posed.mp4", audio_path=speech, poses=tmp_path / "poses.npy", progress=False)
    posed, _ = read_video(tmp_path / "posed.mp4")
    replayed, _ = read_video(rendered)
    assert posed.shape == replayed.shape
    assert np.abs(posed.astype(int) - replayed.astype(int)).mean() > 0.5


def test_poses_of_the_wrong_shape_are_a_user_error(tiny_run, speech, tmp_path):
    np.save(tmp_path / "poses.npy", np.zeros((100, 3, 4)))
    with pytest.raises(ThkitError, match=r"shape \[100, 3, 4\], expected \[frames, 4, 4\]"):
        render_run(tiny_run, tmp_path / "out.mp4", audio_path=speech, poses=tmp_path / "poses.npy", progress=False)
    assert not (tmp_path / "out.mp4").exists()


def test_a_folder_that_is_not_a_run_is_a_user_error(tmp_path, speech):
    with pytest.raises(ThkitError, match="not a thkit run folder"):
        render_run(tmp_path, tmp_path / "out.mp4", audio_path=speech, progress=False)
    with pytest.raises(ThkitError, match="not a thkit run folder"):
        render_run(tmp_path / "absent", tmp_path / "out.mp4", audio_path=speech, progress=False)


def test_an_untrained_run_is_a_user_error(tiny_run, speech, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(tiny_run / "spec.yaml", run / "spec.yaml")
    record = json.loads((tiny_run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps(record))
    with pytest.raises(ThkitError, match="has not been trained yet"):  # no weights
        render_run(run, tmp_path / "out.mp4", audio_path=speech, progress=False)
    shutil.copy(tiny_run / "weights.safetensors", run / "weights.safetensors")
    record["stages"] = [{**stage, "done": 0} for stage in record["stages"]]
    (run / "run.json").write_text(json.dumps(record))
    with pytest.raises(ThkitError, match="has not been trained yet"):  # weights of the untrained start
        render_run(run, tmp_path / "out.mp4", audio_path=speech, progress=False)


def test_bad_audio_is_a_user_error(tiny_run, tmp_path):
    (tmp_path / "noise.wav").write_text("this is not audio")
    with pytest.raises(ThkitError, match="noise.wav"):
        render_run(tiny_run, tmp_path / "out.mp4", audio_path=tmp_path / "noise.wav", progress=False)
    with pytest.raises(ThkitError, match="no such file"):
        render_run(tiny_run, tmp_path / "out.mp4", audio_path=tmp_path / "absent.wav", progress=False)
    with pytest.raises(ThkitError, match="exactly one"):
        render_run(tiny_run, tmp_path / "out.mp4", progress=False)
    assert not (tmp_path / "out.mp4").exists()


def test_a_graph_that_reads_the_ground_truth_video_cannot_render_new_audio():
    from thkit.core.graph import load_graph
    from thkit.demo import FAST, SPEC
    from thkit.render.pipeline import _check_inputs

    graph = load_graph(SPEC, overrides=(*FAST, "nodes.torso.inputs.head=$frame"))
    with pytest.raises(ThkitError, match=r"torso of spec 'demo' reads \$frame"):
        _check_inputs(graph)
