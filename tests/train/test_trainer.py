"""Staged training end to end on the synthetic subject, with toy components."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from thkit.core.errors import SpecError, ThkitError
from thkit.core.graph import load_graph
from thkit.data.layout import Dataset
from thkit.train import train
from thkit.train.subject import RaySampler, Subject
from thkit.train.trainer import param_groups
from tests.train.conftest import FAST, metrics, save_random_lpips_weights, write_spec
from tests.train.toys import PixelField, toy_registry

TOY = """\
thkit: 1
name: toy
data: {{dataset: {dataset}}}
nodes:
  mel: {{kind: encoder, type: mel, params: {{n_mels: 16, hop_ms: 20}}, inputs: {{audio: $audio}}}}
  fuse: {{kind: fusion, type: toy-fusion, params: {{dim: 8, dropout: 0.1}}, inputs: {{features: mel.features}}}}
  head: {{kind: renderer, type: pixel-field, inputs: {{audio: fuse.code, pose: $pose}}}}
  torso: {{kind: renderer, type: overlay, inputs: {{under: head.image}}}}
train:
  stages:
    - {{name: head, train: [fuse, head], steps: 40, lr: 0.01, losses: {{rgb: 1.0, ambient: 0.001, entropy: 0.0001}}}}
    - {{name: torso, train: [torso], steps: 10, lr: 0.01}}
"""


class Killed(Exception):
    pass


def kill_at(stage: str, step: int):
    def callback(name: str, done: int) -> None:
        if (name, done) == (stage, step):
            raise Killed(f"{stage} step {step}")

    return callback


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = load_file(a / "weights.safetensors"), load_file(b / "weights.safetensors")
    assert sorted(first) == sorted(second)
    for key in first:
        assert torch.equal(first[key], second[key]), key


@pytest.fixture(scope="module")
def two_stage(subject, tmp_path_factory):
    """A finished two-stage run, and the weights it had when its second stage began."""
    folder = tmp_path_factory.mktemp("two-stage")
    spec = write_spec(folder, TOY.format(dataset=subject))
    after_head: dict = {}

    def snapshot(stage: str, done: int) -> None:
        if (stage, done) == ("torso", 1):  # the checkpoint on disk is the head stage's end
            after_head.update(load_file(folder / "run" / "weights.safetensors"))

    run = train(spec, folder / "run", options=FAST, components=toy_registry(), progress=False, callback=snapshot)
    return spec, run, after_head


def test_loss_falls_and_psnr_rises(two_stage):
    _, run, _ = two_stage
    head = [line for line in metrics(run) if line["stage"] == "head"]
    assert [line["stage_step"] for line in head] == list(range(1, 41))
    first, last = head[:5], head[-5:]
    assert np.mean([line["terms"]["rgb"] for line in last]) < 0.6 * np.mean([line["terms"]["rgb"] for line in first])
    assert np.mean([line["psnr"] for line in last]) > np.mean([line["psnr"] for line in first]) + 2
    assert set(head[0]["terms"]) == {"rgb", "ambient", "entropy"}
    assert head[0]["lr"] == 0.01 and head[-1]["lr"] == pytest.approx(0.01 * 0.1 ** (39 / 40))  # to 0.1x over the stage
    assert head[-1]["step"] == 40 and metrics(run)[-1]["step"] == 50


def test_plane_and_grid_parameters_train_ten_times_faster():
    field = load_graph("t.yaml", text=TOY.format(dataset="none"), components=toy_registry()).nodes["head"].component.build()
    groups = param_groups({"head": field}, 0.002)
    assert [(group["lr"], len(group["params"])) for group in groups] == [(0.002, 5), (0.02, 1)]
    assert groups[1]["params"][0] is field.plane


def test_frozen_nodes_do_not_change(two_stage):
    _, run, after_head = two_stage
    final = load_file(run / "weights.safetensors")
    for key, value in final.items():
        if key.startswith("torso."):
            continue
        assert torch.equal(value, after_head[key]), key
    assert any(not torch.equal(final[key], after_head[key]) for key in final if key.startswith("torso."))


def test_run_folder_holds_the_resolved_spec_record_and_logs(two_stage, subject):
    spec, run, _ = two_stage
    files = sorted(str(path.relative_to(run)) for path in run.rglob("*") if path.is_file() and "tb" not in path.parts)
    assert files == ["metrics.jsonl", "preview.mp4", "run.json", "spec.yaml", "state/state.json", "state/tensors.safetensors", "weights.safetensors"]
    assert list((run / "tb").glob("events.out.tfevents.*"))
    resolved = yaml.safe_load((run / "spec.yaml").read_text())
    assert resolved["data"] == {"dataset": str(subject.resolve())}
    assert resolved["nodes"] == yaml.safe_load(spec.read_text())["nodes"]
    assert load_graph(run / "spec.yaml", components=toy_registry()).context.n_frames == 50
    record = json.loads((run / "run.json").read_text())
    assert record["spec"] == "toy" and record["dataset"] == str(subject.resolve()) and record["global_step"] == 50
    assert record["stages"] == [{"name": "head", "steps": 40, "done": 40}, {"name": "torso", "steps": 10, "done": 10}]
    keys = load_file(run / "weights.safetensors")
    assert {key.split(".")[0] for key in keys} == {"fuse", "head", "torso"}  # mel has no state
    assert "head.plane" in keys and "fuse.linear.weight" in keys


def test_preview_is_a_video_of_rendered_and_true_frames(two_stage, subject):
    _, run, _ = two_stage
    with av.open(str(run / "preview.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    assert len(frames) == 2 and frames[0].shape == (64, 128, 3)
    truth = Dataset(subject).frame(46)  # the first validation frame, on the right
    assert np.abs(frames[0][:, 64:].astype(float) - truth).mean() < 6


def test_refuses_to_overwrite_a_run_without_force(two_stage, tmp_path):
    spec, run, _ = two_stage
    before = (run / "weights.safetensors").read_bytes()
    with pytest.raises(ThkitError) as caught:
        train(spec, run, options=FAST, components=toy_registry(), progress=False)
    assert str(run) in caught.value.message and "--force" in caught.value.hint
    assert (run / "weights.safetensors").read_bytes() == before
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ThkitError, match="holds no thkit run"):
        train(spec, tmp_path, options=FAST, components=toy_registry(), progress=False, force=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_stage_subset_keeps_the_other_stages_weights(two_stage, tmp_path):
    spec, run, _ = two_stage
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    before = load_file(copy / "weights.safetensors")
    train(spec, copy, stages=["torso"], options=FAST, components=toy_registry(), progress=False, overrides=["train.stages.1.steps=3"])
    after = load_file(copy / "weights.safetensors")
    assert all(torch.equal(after[key], before[key]) for key in before if not key.startswith("torso."))
    assert not all(torch.equal(after[key], before[key]) for key in before if key.startswith("torso."))
    assert metrics(copy)[-1] | {"time": 0} == metrics(copy)[-1] | {"stage": "torso", "stage_step": 3, "step": 53, "time": 0}
    with pytest.raises(ThkitError, match="unknown stage 'tors' \\(did you mean 'torso'\\?\\); stages: head, torso"):
        train(spec, copy, stages=["tors"], options=FAST, components=toy_registry(), progress=False)


def test_force_replaces_the_run(two_stage, tmp_path):
    spec, run, _ = two_stage
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    train(spec, copy, force=True, stages=["head"], options=FAST, components=toy_registry(), progress=False, overrides=["train.stages.0.steps=2"])
    assert [line["step"] for line in metrics(copy)] == [1, 2]
    assert json.loads((copy / "run.json").read_text())["stages"][1] == {"name": "torso", "steps": 10, "done": 0}


def test_a_killed_run_resumes_to_the_same_weights(two_stage, tmp_path):
    """Killed mid-stage twice (each time some steps after a checkpoint), resumed each time: the same run."""
    spec, uninterrupted, _ = two_stage
    options = FAST.__class__(**{**FAST.__dict__, "checkpoint_every": 5})
    out = tmp_path / "run"
    for kill in (kill_at("head", 22), kill_at("torso", 7)):
        with pytest.raises(Killed):
            train(spec, out, resume=True, options=options, components=toy_registry(), progress=False, callback=kill)
    lost = [line["step"] for line in metrics(out)]
    assert lost[-1] == 45  # the torso stage's checkpoint at its step 5 (global 45): steps 46 and 47 were lost
    train(spec, out, resume=True, options=options, components=toy_registry(), progress=False)
    assert_same_weights(uninterrupted, out)
    strip = lambda lines: [{key: value for key, value in line.items() if key != "time"} for line in lines]  # noqa: E731
    assert strip(metrics(out)) == strip(metrics(uninterrupted))


def test_resume_refuses_a_changed_spec(two_stage, tmp_path):
    spec, run, _ = two_stage
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    with pytest.raises(ThkitError, match="the spec differs from the one .* was trained with \\(at nodes.fuse.params.dim\\)"):
        train(spec, copy, resume=True, options=FAST, components=toy_registry(), progress=False, overrides=["nodes.fuse.params.dim=4"])


FEED = """\
thkit: 1
name: fed
data: {{dataset: {dataset}}}
nodes:
  mel: {{kind: encoder, type: mel, params: {{n_mels: 16, hop_ms: 20}}, inputs: {{audio: $audio}}}}
  a2l: {{kind: conditioning, type: toy-landmarks, inputs: {{features: mel.features}}}}
  head: {{kind: renderer, type: pixel-field, inputs: {{landmarks: a2l.landmarks}}}}
train:
  stages:
    - {{name: a2l, train: [a2l], steps: 30, lr: 0.01}}
    - {{name: head, train: [head], steps: 3, feed: {{a2l.landmarks: $landmarks}}}}
"""


def test_feed_substitutes_tracked_landmarks_while_the_stage_trains(subject, tmp_path, monkeypatch):
    spec = write_spec(tmp_path, FEED.format(dataset=subject))
    seen: list = []
    monkeypatch.setattr(PixelField, "seen", seen)
    run = train(spec, tmp_path / "run", options=FAST, components=toy_registry(), progress=False)
    tracked = torch.from_numpy(np.array(Dataset(subject).array("landmarks3d")))
    training, preview = seen[:3], seen[3:]
    assert len(training) == 3 and len(preview) == 2 * 2  # 2 frames of 4096 pixels in chunks of 2048
    for batch, conditions in training:
        assert torch.equal(conditions["landmarks"], tracked[batch.frame_ids])
    for batch, conditions in preview:  # rendering uses the graph's own edge: predicted landmarks
        assert batch.frame_ids.tolist() in ([46], [47])
        assert not torch.allclose(conditions["landmarks"], tracked[batch.frame_ids], atol=1e-3)
    a2l = [line for line in metrics(run) if line["stage"] == "a2l"]
    assert set(a2l[0]["terms"]) == {"landmarks"} and a2l[0]["psnr"] is None
    assert a2l[-1]["loss"] < 0.5 * a2l[0]["loss"]


def test_lips_stage_samples_patches_in_the_lip_box(subject, tmp_path, monkeypatch, checks_plugin):
    save_random_lpips_weights(tmp_path / "weights")
    monkeypatch.setenv("THKIT_WEIGHTS", str(tmp_path / "weights"))
    text = TOY.format(dataset=subject).split("train:")[0] + "train:\n  stages:\n    - {name: lips, train: [head], steps: 3, losses: {rgb: 1.0, lpips: 0.01, ssim: 0.1}}\n"
    spec = write_spec(tmp_path, text)
    seen: list = []
    monkeypatch.setattr(PixelField, "seen", seen)
    options = FAST.__class__(**{**FAST.__dict__, "preview_frames": 0})
    run = train(spec, tmp_path / "run", options=options, components=toy_registry(), progress=False)
    lips = np.array(Dataset(subject).array("lip_boxes"))
    assert len(seen) == 3
    for batch, _ in seen:
        assert batch.n_rays == 2 * 32 * 32
        for slot, frame in enumerate(batch.frame_ids.tolist()):
            pixels = batch.pixels[batch.slot == slot]
            x, y = pixels[:, 0].reshape(32, 32), pixels[:, 1].reshape(32, 32)
            assert torch.equal(x[0], x[-1]) and torch.equal(y[:, 0], y[:, -1])  # one row-major square
            assert (x[0, 1:] - x[0, :-1]).eq(1).all() and (y[1:, 0] - y[:-1, 0]).eq(1).all()
            x0, y0, x1, y1 = lips[frame]
            assert x[0, 0] < x1 and x[0, -1] > x0 and y[0, 0] < y1 and y[-1, 0] > y0  # it overlaps the lip box
    assert set(metrics(run)[0]["terms"]) == {"rgb", "lpips", "ssim"}
    assert not (run / "preview.mp4").exists()


def test_scattered_rays_favour_the_face(subject):
    sampler = RaySampler(Subject(Dataset(subject)), torch.Generator().manual_seed(0), frames=2, rays=2000, patch=32, face_fraction=0.5, face_margin=0.25)
    batch = sampler.sample()
    boxes = np.array(Dataset(subject).array("face_boxes"))[batch.pixels.frame_ids.numpy()][batch.pixels.slot.numpy()]
    x, y = batch.pixels.pixels[:, 0].numpy(), batch.pixels.pixels[:, 1].numpy()
    grow = (boxes[:, 2:] - boxes[:, :2]) * 0.25
    inside = (x > boxes[:, 0] - grow[:, 0] - 1) & (x < boxes[:, 2] + grow[:, 0] + 1) & (y > boxes[:, 1] - grow[:, 1] - 1) & (y < boxes[:, 3] + grow[:, 1] + 1)
    face_share = ((boxes[:, 2] - boxes[:, 0]) * 1.5 * (boxes[:, 3] - boxes[:, 1]) * 1.5).mean() / 64**2
    assert inside.mean() > 0.5 + 0.5 * face_share - 0.05
    frames = [Dataset(subject).frame(int(batch.pixels.frame_ids[s])) for s in batch.pixels.slot.tolist()]
    colour = np.stack([frame[int(row), int(col)] for frame, row, col in zip(frames, y - 0.5, x - 0.5)]) / 255
    assert np.allclose(batch.target.numpy(), colour, atol=1e-6)


KILLER = """\
import os, signal, sys
import torch
torch.set_num_threads(1)
from tests.train.conftest import FAST
from tests.train.toys import toy_registry
from thkit.train import train

def kill(stage, done):
    if (stage, done) == ("head", 23):
        os.kill(os.getpid(), signal.SIGKILL)

options = FAST.__class__(**{**FAST.__dict__, "checkpoint_every": 10})
train(sys.argv[1], sys.argv[2], options=options, components=toy_registry(), progress=False, callback=kill)
"""


def test_a_run_killed_by_sigkill_resumes_to_the_same_weights(two_stage, tmp_path):
    """A real SIGKILL (no cleanup of any kind) 3 steps after the checkpoint at head step 20."""
    spec, uninterrupted, _ = two_stage
    out = tmp_path / "run"
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", KILLER, str(spec), str(out)], cwd=root, capture_output=True, text=True, timeout=300)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert json.loads((out / "run.json").read_text())["global_step"] == 20
    options = FAST.__class__(**{**FAST.__dict__, "checkpoint_every": 10})
    train(spec, out, resume=True, options=options, components=toy_registry(), progress=False)
    assert_same_weights(uninterrupted, out)


def test_stage_checks_run_even_without_the_hook_plugin(subject, tmp_path):
    spec = write_spec(tmp_path, TOY.format(dataset=subject).replace("losses: {rgb: 1.0, ambient", "losses: {rgb: 1.0, sync: 1.0, ambient"))
    with pytest.raises(SpecError, match="the sync loss is fitted by its own loop and cannot share a stage with ambient, entropy, rgb"):
        train(spec, tmp_path / "run", options=FAST, components=toy_registry(), progress=False)
    assert not (tmp_path / "run").exists()


def test_default_run_folder_is_runs_slash_the_spec_name(two_stage, tmp_path, monkeypatch):
    spec, _, _ = two_stage
    monkeypatch.chdir(tmp_path)
    run = train(spec, stages=["torso"], overrides=["train.stages.1.steps=1"], options=FAST, components=toy_registry(), progress=False)
    assert run == Path("runs/toy") and (tmp_path / "runs" / "toy" / "weights.safetensors").is_file()


def test_a_run_killed_before_its_first_checkpoint_starts_again(two_stage, tmp_path):
    spec, _, _ = two_stage
    out = tmp_path / "run"
    (out / "tb").mkdir(parents=True)
    (out / "spec.yaml").write_text("thkit: 1\n")
    (out / ".weights.safetensors.partial").write_bytes(b"half")
    train(spec, out, stages=["torso"], overrides=["train.stages.1.steps=1"], options=FAST, components=toy_registry(), progress=False)
    assert json.loads((out / "run.json").read_text())["global_step"] == 1
    assert not (out / ".weights.safetensors.partial").exists()
