"""Resolving a spec's data section: datasets as they are, synthetic subjects and videos made once, atomically."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import thkit.data.preprocess
import thkit.data.synth
from thkit.core.errors import ThkitError
from thkit.core.spec import DataSpec, SyntheticData
from thkit.data.layout import Dataset
from thkit.train.data import cache_root, resolve_dataset

SMALL = SyntheticData(seconds=2, size=64, seed=0)


def test_synthetic_subject_is_generated_once_and_reused(subject, cache, monkeypatch):
    assert subject.parent == cache / "datasets" and subject.name.startswith("synthetic-")
    meta = Dataset(subject).meta
    assert (meta.height, meta.width, meta.n_frames, len(meta.train_frames)) == (64, 64, 50, 46)

    def no_generation(*args, **kwargs):
        raise AssertionError("the cached subject was generated again")

    monkeypatch.setattr(thkit.data.synth, "generate", no_generation)
    assert resolve_dataset(DataSpec(synthetic=SMALL), cache) == subject
    assert [path.name for path in (cache / "datasets").iterdir()] == [subject.name]  # no temporary folder left


def test_other_synthetic_parameters_get_another_folder_and_a_failed_generation_leaves_nothing(tmp_path, monkeypatch):
    def broken(out, **kwargs):
        (Path(out) / "frames").mkdir()
        raise ThkitError("the story ran out")

    monkeypatch.setattr(thkit.data.synth, "generate", broken)
    with pytest.raises(ThkitError, match="the story ran out"):
        resolve_dataset(DataSpec(synthetic=SyntheticData(seconds=2, size=64, seed=1)), tmp_path)
    assert list((tmp_path / "datasets").iterdir()) == []


def test_dataset_is_used_as_is_and_a_non_dataset_is_refused(subject, tmp_path):
    assert resolve_dataset(DataSpec(dataset=str(subject)), tmp_path) == subject.resolve()
    assert not (tmp_path / "datasets").exists()
    with pytest.raises(ThkitError, match="not a thkit dataset"):
        resolve_dataset(DataSpec(dataset=str(tmp_path)), tmp_path)


def test_video_is_preprocessed_once_per_content(subject, tmp_path, monkeypatch):
    calls = []

    def fake_preprocess(video, out, fps, size, progress=True):
        calls.append((Path(video).name, fps, size))
        shutil.copytree(subject, out, dirs_exist_ok=True, ignore=shutil.ignore_patterns("features"))
        return Dataset(out)

    monkeypatch.setattr(thkit.data.preprocess, "preprocess", fake_preprocess)
    video = tmp_path / "talk.mp4"
    shutil.copy(subject / "video.mp4", video)
    first = resolve_dataset(DataSpec(video=str(video), size=64), tmp_path)
    assert first.name.startswith("video-") and json.loads((first / "dataset.json").read_text())["n_frames"] == 50
    renamed = tmp_path / "renamed.mp4"
    shutil.copy(video, renamed)
    assert resolve_dataset(DataSpec(video=str(renamed), size=64), tmp_path) == first
    assert calls == [("talk.mp4", 25, 64)]
    other_size = resolve_dataset(DataSpec(video=str(video), size=128), tmp_path)
    assert other_size != first and len(calls) == 2
    assert sorted(path.name for path in (tmp_path / "datasets").iterdir()) == sorted([first.name, other_size.name])


def test_missing_video_is_a_user_error(tmp_path):
    with pytest.raises(ThkitError, match="no-such.mp4: no such file"):
        resolve_dataset(DataSpec(video=str(tmp_path / "no-such.mp4")), tmp_path)


def test_cache_root_follows_thkit_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("THKIT_CACHE", str(tmp_path))
    assert cache_root() == tmp_path
    monkeypatch.delenv("THKIT_CACHE")
    assert cache_root() == Path.home() / ".cache" / "thkit"
