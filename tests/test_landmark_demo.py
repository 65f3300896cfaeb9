"""The decoupled landmark path as `thkit demo --spec examples/landmark-demo.yaml` runs it: the demo
end to end with its landmark measures, either half retrained alone, and landmark edits that show
in the rendered pixels."""

from __future__ import annotations

import functools
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import thkit.demo
from thkit.cli import main
from thkit.core.errors import ThkitError
from thkit.core.graph import Ref, load_graph
from thkit.data.layout import Intrinsics
from thkit.demo import SPEC, Clip, audio_under, fast_overrides, run_demo, val_clip
from thkit.demo_landmarks import mouth_error_px, predicted_landmarks, project
from thkit.render.drive import Drive
from thkit.train import TrainOptions, train

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
LANDMARK_DEMO = EXAMPLES / "landmark-demo.yaml"
FAST_LANDMARK = fast_overrides(LANDMARK_DEMO)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("landmark-cache")


@pytest.fixture(autouse=True)
def private_cache(cache, monkeypatch):
    """Datasets, speech and features go to the module's cache, never to ~/.cache/thkit."""
    monkeypatch.setenv("THKIT_CACHE", str(cache))


def test_fast_overrides_shrink_each_node_type_of_the_demo_specs():
    assert fast_overrides(SPEC) == thkit.demo.FAST
    graph = load_graph(LANDMARK_DEMO, overrides=FAST_LANDMARK)
    assert graph.context.image_size == 64 and graph.spec.data.synthetic.seconds == 3
    assert graph.nodes["a2l"].spec.params["dim"] == 16 and graph.nodes["head"].spec.params["resolutions"] == [16, 32]
    assert [stage.steps for stage in graph.spec.train.stages] == [2, 8, 2, 2]  # the head stage gets 8
    hybrid = load_graph(EXAMPLES / "hybrid.yaml", overrides=fast_overrides(EXAMPLES / "hybrid.yaml"))
    assert hybrid.nodes["fuse"].spec.params["dim"] == 8 and hybrid.nodes["torso"].spec.params["hidden"] == 16


def test_the_landmark_measures_apply_to_specs_that_predict_3d_landmarks():
    assert predicted_landmarks(load_graph(LANDMARK_DEMO)) == [Ref("a2l", "landmarks")]
    assert predicted_landmarks(load_graph(EXAMPLES / "hybrid.yaml")) == [Ref("a2l", "landmarks")]
    assert predicted_landmarks(load_graph(SPEC)) == []


def test_projection_follows_the_dataset_camera_conventions():
    """A camera 10 dm in front of the head (OpenGL axes: it looks along its -z): the origin lands on
    the principal point, +x to the right, +y up in the head is up (smaller y) in the image."""
    pose = np.eye(4)[None].copy()
    pose[0, 2, 3] = 10.0
    points = np.array([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 5.0]]])
    pixels = project(points, pose, Intrinsics(focal=100.0, cx=32.0, cy=30.0))
    assert np.allclose(pixels[0], [[32, 30], [42, 30], [32, 20], [32, 30]])
    tracked = np.zeros((1, 68, 2))
    moved = tracked.copy()
    moved[0, 48:68] = [3.0, 4.0]  # every mouth point 5 px away; the others are not measured
    moved[0, :48] = 100.0
    assert mouth_error_px(moved, tracked) == pytest.approx(5.0)


def test_landmark_demo_fast_path_through_the_command(tmp_path, monkeypatch):
    """`thkit demo --spec examples/landmark-demo.yaml` end to end, at the fast sizes (the command runs
    `run_demo` with the spec; the test makes it the fast path)."""
    monkeypatch.setattr(thkit.demo, "run_demo", functools.partial(run_demo, fast=True))
    out = tmp_path / "landmark-demo"
    main(["demo", "--spec", str(LANDMARK_DEMO), "--out", str(out)])
    metrics = json.loads((out / "metrics.json").read_text())
    for name in ("held_out.mp4", "val.mp4", "val_tracked.mp4", "weights.safetensors"):
        assert (out / name).is_file(), name
    assert metrics["settings"]["spec"] == str(LANDMARK_DEMO) and metrics["settings"]["fast"]
    assert [stage["done"] for stage in metrics["settings"]["stages"]] == [2, 8, 2, 2]
    assert metrics["videos"]["val_tracked"] == str(out / "val_tracked.mp4")
    marks, tracked = metrics["landmarks"], metrics["val_tracked"]
    assert set(marks) == {
        "node", "frames", "mouth_error_px", "mouth_error_px_neutral", "mouth_error_px_tracked_3d",
        "mouth_correlation", "mouth_amplitude_ratio", "held_out_mouth_correlation",
    }  # fmt: skip
    assert marks["node"] == "a2l" and marks["frames"] == 75 // 11
    for key in ("mouth_error_px", "mouth_error_px_neutral", "mouth_correlation", "mouth_amplitude_ratio", "held_out_mouth_correlation"):
        assert isinstance(marks[key], float) and math.isfinite(marks[key]), key
    assert 0 < marks["mouth_error_px"] < 10 and 0 < marks["mouth_error_px_neutral"] < 10  # pixels at 64 px
    assert marks["mouth_error_px_tracked_3d"] < 0.01  # the synthetic subject is tracked perfectly: projection matches
    assert -1 <= marks["mouth_correlation"] <= 1 and -1 <= marks["held_out_mouth_correlation"] <= 1
    assert set(tracked) == set(metrics["val"]) and tracked["frames"] == metrics["val"]["frames"]
    assert 5 < tracked["psnr_db"] < 60 and -1 <= tracked["ssim"] <= 1


def test_the_demo_command_defaults_to_the_demo_spec_in_runs(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(thkit.demo, "run_demo", lambda out, *, spec: calls.append((out, spec)))
    monkeypatch.chdir(tmp_path)
    main(["demo"])
    main(["demo", "--spec", str(LANDMARK_DEMO)])
    assert calls == [(Path("runs/demo"), SPEC), (Path("runs/landmark-demo"), LANDMARK_DEMO)]


# -- either half retrained alone ------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(cache, tmp_path_factory) -> Path:
    """landmark-demo at the fast sizes, every stage run."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("THKIT_CACHE", str(cache))
        options = TrainOptions(rays=256, preview_frames=0, render_chunk=4096)
        return train(LANDMARK_DEMO, tmp_path_factory.mktemp("tiny") / "run", overrides=FAST_LANDMARK, options=options, progress=False)


def _weights_by_node(run: Path) -> dict[str, dict[str, torch.Tensor]]:
    nodes: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in load_file(run / "weights.safetensors").items():
        node, _, name = key.partition(".")
        nodes.setdefault(node, {})[name] = tensor
    return nodes


def _changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> bool:
    assert before.keys() == after.keys()
    return any(not torch.equal(before[name], after[name]) for name in before)


@pytest.mark.parametrize(("stage", "retrained"), [("a2l", "a2l"), ("head", "head")])
def test_retraining_one_stage_leaves_every_other_node_bit_identical(tiny_run, tmp_path, stage, retrained):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = _weights_by_node(run)
    assert set(before) == {"a2l", "head", "torso"}
    main(["build", str(LANDMARK_DEMO), "--out", str(run), "--stages", stage, *(arg for value in FAST_LANDMARK for arg in ("--set", value))])
    after = _weights_by_node(run)
    assert _changed(before[retrained], after[retrained])
    for node in set(before) - {retrained}:
        assert not _changed(before[node], after[node]), node


def test_render_feed_replaces_a_node_output_by_a_replayed_input(tiny_run):
    from thkit.render.pipeline import frame_values, load_run

    loaded = load_run(tiny_run)
    clip = val_clip(loaded)
    frames = loaded.dataset.meta.val_frames
    fed = frame_values(loaded, clip.audio, clip.timeline, clip.drive, feed={"a2l.landmarks": "$landmarks"})
    tracked = torch.from_numpy(np.array(loaded.dataset.array("landmarks3d")[frames.start : frames.stop]))
    assert torch.equal(fed[Ref("a2l", "landmarks")], tracked)
    with pytest.raises(ThkitError, match="a2l.mouth: not a node output"):
        frame_values(loaded, clip.audio, clip.timeline, clip.drive, feed={"a2l.mouth": "$landmarks"})
    with pytest.raises(ThkitError, match=r"\$frame is not a replayed input"):
        frame_values(loaded, clip.audio, clip.timeline, clip.drive, feed={"a2l.landmarks": "$frame"})


# -- edits in the rendered pixels -----------------------------------------------------------------

# 4 s of the subject at 64 px, the renderer sampling rays as the demo spec does (24 + 12 samples),
# the landmark transformer trained 200 steps and the head 300, no lips or torso steps: enough for the
# mouth's dark interior to follow the landmarks. Over seeds 0-3 the lip box's luminance at
# mouth_scale=1 correlated with the predicted opening at -0.96 to -0.97, and over the open-mouth
# frames it fell by 6.1 to 9.6 grey levels from mouth_scale=0 to 2. With 200 head steps one seed
# fell by 1.0, and with the fast path's 8 + 4 samples the falls were 1.2 to 2.3: too close to call.
EDIT_TRAINING = (
    "data.synthetic.seconds=4",
    "nodes.head.params.coarse_samples=24",
    "nodes.head.params.fine_samples=12",
    "train.stages.0.steps=200",
    "train.stages.1.steps=300",
    "train.stages.2.steps=0",
    "train.stages.3.steps=0",
)
WIDER = 0.01  # predicted opening (over face height) above the neutral face's that makes a frame an open-mouth frame


@pytest.fixture(scope="module")
def edit_run(cache, tmp_path_factory) -> Path:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("THKIT_CACHE", str(cache))
        out, options = tmp_path_factory.mktemp("edit") / "run", TrainOptions(rays=1024, preview_frames=0)
        return train(LANDMARK_DEMO, out, overrides=(*FAST_LANDMARK, *EDIT_TRAINING), options=options, progress=False)


def test_mouth_scale_opens_and_closes_the_rendered_mouth(edit_run, tmp_path):
    """Measured on the pixels: the mean luminance inside the subject's mean lip box, where an open
    mouth shows its dark interior (dlib finds no face in a 64 px render of a barely trained head)."""
    from thkit.data.preprocess.signals import mouth
    from thkit.render.pipeline import frame_values, load_run, render_audio

    loaded = load_run(edit_run)
    dataset, frames = loaded.dataset, range(0, 40)
    clip = Clip(*audio_under(dataset, frames, loaded.graph.context.video_fps), Drive.replay(len(frames), frames, dataset.meta.train_frames))
    train_rows = slice(dataset.meta.train_frames.start, dataset.meta.train_frames.stop)
    x0, y0, x1, y1 = np.asarray(dataset.array("lip_boxes"))[train_rows].mean(axis=0).round().astype(int)

    def lip_luminance(scale: float) -> np.ndarray:
        drawn: list[np.ndarray] = []
        path, edits = tmp_path / f"{scale}.mp4", {"mouth_scale": scale}
        render_audio(loaded, clip.audio, clip.timeline, clip.drive, path, progress=False, edits=edits, on_frame=lambda _, rgb: drawn.append(rgb))
        return np.stack(drawn)[:, y0:y1, x0:x1].astype(np.float64).mean(axis=(1, 2, 3))

    predicted = frame_values(loaded, clip.audio, clip.timeline, clip.drive)[Ref("a2l", "landmarks")].numpy()
    opening, neutral = mouth(predicted), mouth(loaded.modules["a2l"].neutral.numpy()[None])[0]
    wide = opening > neutral + WIDER
    assert 5 <= wide.sum() <= len(frames) - 5  # the clip speaks: some frames open wider than neutral, some not
    closed, unedited, exaggerated = lip_luminance(0.0), lip_luminance(1.0), lip_luminance(2.0)
    assert np.corrcoef(unedited, opening)[0, 1] < -0.7  # the head learned it: wider landmarks, darker lips
    assert exaggerated[wide].mean() < unedited[wide].mean() < closed[wide].mean()
    assert closed[wide].mean() - exaggerated[wide].mean() > 3.0  # grey levels
