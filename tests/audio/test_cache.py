"""The feature cache: hits, keys that change with everything outputs depend on, and crash safety."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tests.audio.conftest import mel_graph
from thkit.audio.cache import (
    FeatureCache,
    cached_encode,
    canonical_json,
    dataset_cache_root,
    default_cache_root,
    module_digest,
)
from thkit.core.graph import Graph
from thkit.core.runner import run_nodes
from thkit.core.timebase import Timeline
from thkit.plugins.encoders.mel import MelEncoder

KEY = {"type": "mel", "params": {"n_mels": 40}, "audio": "0" * 64}
RATE = 16000


class Counter:
    """A compute function that counts its calls."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays
        self.calls = 0

    def __call__(self) -> dict[str, np.ndarray]:
        self.calls += 1
        return self.arrays


def speech(seconds: float = 1.0, seed: int = 0) -> torch.Tensor:
    return 0.1 * torch.randn(int(seconds * RATE), generator=torch.Generator().manual_seed(seed))


def test_a_miss_computes_and_stores_and_a_hit_does_not_compute(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    arrays = {"features": np.arange(12, dtype=np.float32).reshape(3, 4), "ids": np.array([3, 1, 2], dtype=np.int64)}
    compute = Counter(arrays)
    first = cache.get_or_compute(KEY, compute)
    second = FeatureCache(tmp_path).get_or_compute(KEY, compute)  # a new process would see the same
    assert compute.calls == 1
    for result in (first, second):
        assert result.keys() == arrays.keys()
        for name, array in arrays.items():
            np.testing.assert_array_equal(result[name], array)
            assert result[name].dtype == array.dtype
    [entry] = tmp_path.rglob("*.safetensors")
    assert entry.parent.parent.name == "mel"
    assert not list(tmp_path.rglob("*.tmp"))


def test_any_change_in_the_key_parts_misses(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    compute = Counter({"x": np.ones(2, np.float32)})
    cache.get_or_compute(KEY, compute)
    cache.get_or_compute({**KEY, "params": {"n_mels": 41}}, compute)
    cache.get_or_compute({**KEY, "version": "2"}, compute)
    cache.get_or_compute(dict(reversed(list(KEY.items()))), compute)  # same parts, other order: a hit
    assert compute.calls == 3


def test_an_entry_made_from_other_key_parts_is_never_served(tmp_path: Path) -> None:
    """Even a file at the right path (a hash collision, a hand-copied entry) must carry its own key parts."""
    cache = FeatureCache(tmp_path)
    cache.put({**KEY, "params": {"n_mels": 80}}, {"x": np.zeros(1, np.float32)})
    source = cache.path({**KEY, "params": {"n_mels": 80}})
    target = cache.path(KEY)
    target.parent.mkdir(parents=True, exist_ok=True)
    source.replace(target)
    assert cache.get(KEY) is None


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_damaged_entry_is_a_miss_and_is_rewritten(tmp_path: Path, damage: str) -> None:
    cache = FeatureCache(tmp_path)
    arrays = {"x": np.linspace(0, 1, 1000, dtype=np.float32)}
    cache.put(KEY, arrays)
    path = cache.path(KEY)
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "garbage": os.urandom(len(data)), "empty": b""}[damage])
    assert cache.get(KEY) is None
    compute = Counter(arrays)
    np.testing.assert_array_equal(cache.get_or_compute(KEY, compute)["x"], arrays["x"])
    assert compute.calls == 1
    np.testing.assert_array_equal(cache.get(KEY)["x"], arrays["x"])


KILLED_WRITER = textwrap.dedent(
    """
    import os, sys, time
    import numpy as np
    from thkit.audio.cache import FeatureCache

    def stall(fd):  # the whole payload is in the temporary file, not yet renamed into place
        print("writing", flush=True)
        time.sleep(60)

    os.fsync = stall
    FeatureCache(sys.argv[1]).put({KEY!r}, {{"x": np.ones(1_000_000, np.float32)}})
    """
)


def test_a_writer_killed_mid_write_leaves_no_entry(tmp_path: Path) -> None:
    script = KILLED_WRITER.format(KEY=KEY)
    writer = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
        leftovers = list(tmp_path.rglob("*.tmp"))
        assert len(leftovers) == 1 and leftovers[0].stat().st_size > 4_000_000
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    cache = FeatureCache(tmp_path)
    assert not cache.path(KEY).exists()
    assert cache.get(KEY) is None
    compute = Counter({"x": np.full(3, 7.0, np.float32)})
    np.testing.assert_array_equal(cache.get_or_compute(KEY, compute)["x"], [7.0, 7.0, 7.0])
    assert compute.calls == 1


def test_a_half_written_temporary_file_is_never_read(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    cache.put(KEY, {"x": np.ones(4, np.float32)})
    path = cache.path(KEY)
    leftover = path.with_name(f".{path.stem}.abc123.tmp")
    leftover.write_bytes(path.read_bytes()[:50])
    path.unlink()
    assert cache.get(KEY) is None
    np.testing.assert_array_equal(cache.get_or_compute(KEY, Counter({"x": np.zeros(2, np.float32)}))["x"], [0, 0])


def test_default_roots(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("THKIT_CACHE", str(tmp_path / "elsewhere"))
    assert default_cache_root() == tmp_path / "elsewhere"
    monkeypatch.delenv("THKIT_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_root() == tmp_path / ".cache" / "thkit" / "features"
    assert dataset_cache_root(tmp_path / "may") == tmp_path / "may" / "features"


def test_key_parts_must_be_plain_json(tmp_path: Path) -> None:
    assert canonical_json({"b": 1, "a": [1.5, None]}) == '{"a":[1.5,null],"b":1}'
    with pytest.raises(TypeError):
        FeatureCache(tmp_path).get({"audio": np.zeros(1)})


# -- encoder nodes through the cache ------------------------------------------------------------


def encode(graph: Graph, cache: FeatureCache | None, audio: torch.Tensor, text: str | None = None, modules=None):
    modules = modules or graph.build_modules(["mel", "fuse"])
    return cached_encode(graph, modules, {"audio": audio}, Timeline(audio.shape[0], RATE, text=text), cache)


def entries(root: Path) -> int:
    return len(list(root.rglob("*.safetensors")))


def test_cached_encode_equals_run_nodes_and_serves_the_second_run(tmp_path: Path) -> None:
    graph = mel_graph()
    modules = graph.build_modules(["mel", "fuse"])
    audio = speech()
    expected = run_nodes(graph, modules, {"audio": audio}, Timeline(audio.shape[0], RATE))
    cache = FeatureCache(tmp_path)
    first = encode(graph, cache, audio, modules=modules)
    assert entries(tmp_path) == 1  # the encoder only: fusions are trainable and always run
    calls = []
    modules["mel"].register_forward_hook(lambda *args: calls.append(1))
    second = encode(graph, cache, audio.clone(), modules=modules)  # equal content, another tensor
    assert calls == []
    for result in (first, second, encode(graph, None, audio, modules=modules)):
        assert result.keys() == expected.keys()
        for ref, tensor in expected.items():
            torch.testing.assert_close(result[ref], tensor, rtol=0, atol=0)


def test_a_params_change_is_never_served_a_stale_entry(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    audio = speech()
    narrow = encode(mel_graph(n_mels=40), cache, audio)
    wide = encode(mel_graph(n_mels=64), cache, audio)
    assert entries(tmp_path) == 2
    [narrow_mel] = [t for r, t in narrow.items() if r.node == "mel"]
    [wide_mel] = [t for r, t in wide.items() if r.node == "mel"]
    assert narrow_mel.shape == (100, 40) and wide_mel.shape == (100, 64)


def test_new_audio_transcript_or_version_recomputes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = FeatureCache(tmp_path)
    graph = mel_graph()
    encode(graph, cache, speech(seed=0))
    encode(graph, cache, speech(seed=1))
    assert entries(tmp_path) == 2
    encode(graph, cache, speech(seed=0), text="hello there")  # phone-level encoders read the transcript
    assert entries(tmp_path) == 3
    monkeypatch.setattr(MelEncoder, "version", "2")
    encode(mel_graph(), cache, speech(seed=0))
    assert entries(tmp_path) == 4
    encode(mel_graph(), cache, speech(seed=0))
    assert entries(tmp_path) == 4


class Gain(nn.Module):
    """An encoder with a weight: after training it is a different function of the same params."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.gain = nn.Parameter(torch.ones(()))

    def forward(self, inputs, timeline):
        return {port: self.gain * tensor for port, tensor in self.inner(inputs, timeline).items()}


def test_changed_weights_recompute(tmp_path: Path) -> None:
    graph = mel_graph()
    modules = graph.build_modules(["mel", "fuse"])
    modules["mel"] = Gain(modules["mel"])
    cache = FeatureCache(tmp_path)
    audio = speech()
    before = encode(graph, cache, audio, modules=modules)
    digest = module_digest(modules["mel"])
    with torch.no_grad():
        modules["mel"].gain.fill_(2.0)
    assert module_digest(modules["mel"]) != digest
    after = encode(graph, cache, audio, modules=modules)
    assert entries(tmp_path) == 2
    [ref] = [r for r in before if r.node == "mel"]
    torch.testing.assert_close(after[ref], 2 * before[ref])


def test_module_digest_is_a_function_of_state_only() -> None:
    first, second = nn.Linear(3, 2), nn.Linear(3, 2)
    assert module_digest(first) != module_digest(second)
    second.load_state_dict(first.state_dict())
    assert module_digest(first) == module_digest(second)
    assert module_digest(nn.Linear(3, 2).to(torch.bfloat16)) != module_digest(first)
