"""The run folder's files: weights, optimizer and RNG state round-trip without pickle; checkpoints commit as one."""

from __future__ import annotations

import json
import random

import numpy as np
import torch
from torch import nn

from thkit.train.run import (
    Checkpoint,
    RunFolder,
    load_optimizer_state,
    load_rng_state,
    optimizer_state,
    rng_state,
)


def make_modules(seed: int) -> dict[str, nn.Module]:
    torch.manual_seed(seed)
    return {"a": nn.Linear(3, 2), "b-c": nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))}


def trained_optimizer(modules: dict[str, nn.Module]) -> torch.optim.Optimizer:
    optimizer = torch.optim.AdamW([{"params": modules["a"].parameters(), "lr": 0.01, "base_lr": 0.01}, {"params": modules["b-c"].parameters(), "lr": 0.1}], betas=(0.9, 0.99))
    for _ in range(3):
        loss = modules["b-c"](modules["a"](torch.randn(4, 3))).pow(2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return optimizer


def test_checkpoint_round_trip(tmp_path):
    modules = make_modules(0)
    optimizer = trained_optimizer(modules)
    sampler = torch.Generator().manual_seed(5)
    optimizer_tensors, optimizer_meta = optimizer_state(optimizer)
    rng_tensors, rng_meta = rng_state(sampler)
    folder = RunFolder(tmp_path / "run").open()
    folder.save({"spec": "toy"}, modules, Checkpoint({**optimizer_tensors, **rng_tensors}, {"optimizer": optimizer_meta, "rng": rng_meta}), ['{"step": 1}'])
    draws = (torch.rand(3), torch.rand(3, generator=sampler), np.random.rand(3), random.random())

    fresh = make_modules(1)
    fresh_optimizer = torch.optim.AdamW([{"params": fresh["a"].parameters()}, {"params": fresh["b-c"].parameters()}], lr=0.5)
    RunFolder(tmp_path / "run").open().load_weights(fresh)
    for name in modules:
        for key, value in modules[name].state_dict().items():
            assert torch.equal(fresh[name].state_dict()[key], value), f"{name}.{key}"
    state = folder.load_state()
    load_optimizer_state(fresh_optimizer, state.tensors, state.meta["optimizer"])
    expected, loaded = optimizer.state_dict(), fresh_optimizer.state_dict()
    assert [dict(group, params=None) for group in loaded["param_groups"]] == [dict(group, params=None, betas=list(group["betas"])) for group in expected["param_groups"]]
    for index, entry in expected["state"].items():
        for key, value in entry.items():
            assert torch.equal(loaded["state"][index][key], value)
    fresh_sampler = torch.Generator().manual_seed(0)
    load_rng_state(fresh_sampler, state.tensors, state.meta["rng"])
    again = (torch.rand(3), torch.rand(3, generator=fresh_sampler), np.random.rand(3), random.random())
    assert torch.equal(again[0], draws[0]) and torch.equal(again[1], draws[1])
    assert np.array_equal(again[2], draws[2]) and again[3] == draws[3]
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == '{"step": 1}\n'
    assert json.loads((tmp_path / "run" / "run.json").read_text()) == {"spec": "toy"}


def test_files_are_safetensors_and_json_only(tmp_path):
    folder = RunFolder(tmp_path).open()
    folder.save({"spec": "toy"}, make_modules(0), Checkpoint({"rng.torch": torch.get_rng_state()}, {}), [])
    names = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*") if path.is_file())
    assert names == ["metrics.jsonl", "run.json", "state/state.json", "state/tensors.safetensors", "weights.safetensors"]
    header = (tmp_path / "weights.safetensors").read_bytes()
    length = int.from_bytes(header[:8], "little")
    keys = json.loads(header[8 : 8 + length])
    assert keys["__metadata__"]["spec"] == "toy"
    assert sorted(key for key in keys if key != "__metadata__") == [
        "a.bias", "a.weight", "b-c.0.bias", "b-c.0.weight", "b-c.1.bias", "b-c.1.num_batches_tracked", "b-c.1.running_mean", "b-c.1.running_var", "b-c.1.weight",
    ]  # fmt: skip


def test_an_interrupted_commit_is_finished_and_an_uncommitted_one_discarded(tmp_path):
    folder = RunFolder(tmp_path).open()
    folder.commit({"run.json": lambda path: path.write_text("1"), "state/state.json": lambda path: path.write_text("1")})
    # Killed after the commit point, before the renames: opening the folder finishes the checkpoint.
    (tmp_path / ".run.json.partial").write_text("2")
    (tmp_path / "state" / ".state.json.partial").write_text("2")
    (tmp_path / ".commit.json").write_text(json.dumps(["run.json", "state/state.json"]))
    RunFolder(tmp_path).open()
    assert (tmp_path / "run.json").read_text() == (tmp_path / "state" / "state.json").read_text() == "2"
    # Killed before the commit point: the partial files are dropped and the last checkpoint stays.
    (tmp_path / ".run.json.partial").write_text("3")
    RunFolder(tmp_path).open()
    assert (tmp_path / "run.json").read_text() == "2"
    assert sorted(path.name for path in tmp_path.rglob("*")) == ["run.json", "state", "state.json"]
