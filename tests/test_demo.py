"""The demo and DAMC specs validate (DAMC's only problem offline: the LPIPS weights), and `run_demo`
runs end to end at its fast sizes."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from thkit.core.errors import SpecError
from thkit.core.graph import load_graph
from thkit.demo import FAST, SPEC, run_demo, spoken_words
from thkit.demo_measures import measure_mouth

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_demo_spec_validates_at_both_sizes():
    full = load_graph(SPEC)
    assert [stage.name for stage in full.spec.train.stages] == ["sync", "head", "lips", "torso"]
    assert full.nodes["head"].spec.type == "triplane-nerf" and full.nodes["fuse"].spec.type == "csfm"
    assert full.context.image_size == 256
    fast = load_graph(SPEC, overrides=FAST)
    assert fast.context.image_size == 64 and fast.spec.train.stages[1].steps < 20


def test_damc_spec_fails_offline_only_for_the_lpips_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("THKIT_WEIGHTS", str(tmp_path / "weights"))
    with pytest.raises(SpecError) as error:
        load_graph(EXAMPLES / "damc.yaml")
    [problem] = error.value.problems
    assert problem.path == "train.stages.2.losses.lpips"
    assert "the lpips loss needs AlexNet weights" in problem.message
    assert str(tmp_path / "weights" / "lpips" / "alexnet.pth") in problem.message
    assert str(tmp_path / "weights" / "lpips" / "alex.pth") in problem.message


def test_damc_spec_validates_with_lpips_weights_in_place(tmp_path, monkeypatch):
    for name in ("alexnet.pth", "alex.pth"):
        (tmp_path / "lpips").mkdir(exist_ok=True)
        (tmp_path / "lpips" / name).write_bytes(b"")  # validation asks only whether the files are there
    monkeypatch.setenv("THKIT_WEIGHTS", str(tmp_path))
    graph = load_graph(EXAMPLES / "damc.yaml")
    assert graph.nodes["content"].outputs["features"].dim == 1024  # hubert-large, read from the id
    assert [stage.losses for stage in graph.spec.train.stages][2] == {"rgb": 1.0, "lpips": 0.01}


def test_mouth_is_measured_on_a_face_and_is_nan_without_one():
    from PIL import Image

    from thkit.data.synth.portrait import photo

    face = np.asarray(Image.fromarray(photo()).resize((200, 200)))
    blank = np.full((200, 200, 3), 128, np.uint8)
    opening = measure_mouth(np.stack([face, face]))
    assert opening.shape == (2,) and (0.03 < opening).all() and (opening < 0.3).all()  # she smiles with parted lips
    assert np.isnan(measure_mouth(np.stack([blank, blank]))).all()


def test_spoken_words_are_the_words_whose_phones_start_in_the_span(tmp_path):
    phones = [
        ("SIL", 0.0, 0.3, ""), ("HH", 0.3, 0.4, "hello"), ("AH", 0.4, 0.5, "hello"), ("L", 0.5, 0.6, "hello"),
        ("OW", 0.6, 0.8, "hello"), ("DH", 0.8, 0.9, "there"), ("EH", 0.9, 1.1, "there"), ("SIL", 1.1, 1.5, ""),
        ("DH", 1.5, 1.6, "there"), ("EH", 1.6, 1.8, "there"),
    ]  # fmt: skip
    (tmp_path / "ground_truth").mkdir()
    record = {"phones": [{"phone": p, "start": a, "end": b, "word": w} for p, a, b, w in phones]}
    (tmp_path / "ground_truth" / "speech.json").write_text(json.dumps(record))
    dataset = SimpleNamespace(root=tmp_path)
    assert spoken_words(dataset, 0.0, 2.0) == "hello there there"
    assert spoken_words(dataset, 0.55, 1.0) == "hello there"  # a word cut at the start still counts
    assert spoken_words(dataset, 1.15, 1.45) is None  # silence
    assert spoken_words(SimpleNamespace(root=tmp_path / "real"), 0.0, 2.0) is None  # no ground truth: unknown


def test_fast_demo_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("THKIT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    metrics = run_demo(out, fast=True)
    for name in ("held_out.mp4", "val.mp4", "metrics.json", "weights.safetensors", "preview.mp4"):
        assert (out / name).is_file(), name
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    assert set(metrics) >= {"run", "videos", "val", "held_out", "render_fps", "seconds", "settings"}
    assert set(metrics["val"]) == {"frames", "psnr_db", "ssim", "mouth_correlation", "mouth_correlation_ground_truth_frames", "faces_found"}
    assert set(metrics["held_out"]) == {"text", "frames", "mouth_correlation", "faces_found"}
    assert metrics["val"]["frames"] == 75 // 11  # 3 s at 25 fps, the last 1/11
    assert 5 < metrics["val"]["psnr_db"] < 60 and -1 <= metrics["val"]["ssim"] <= 1
    assert metrics["held_out"]["frames"] > 50 and metrics["render_fps"] > 0
    assert metrics["videos"]["held_out"] == str(out / "held_out.mp4")
    assert [stage["done"] for stage in metrics["settings"]["stages"]] == [2, 8, 2, 2]
