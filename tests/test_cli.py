"""The `thkit` command as a user runs it: a subprocess, its exit status, stdout and stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "audio-baseline.yaml"
BAD = REPO / "tests" / "core" / "bad_specs"


def thkit(*args: str, cwd: Path | None = None, python_flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *python_flags, "-m", "thkit", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_version():
    result = thkit("--version")
    assert result.returncode == 0 and result.stdout.startswith("thkit, version ")


def test_every_command_has_help():
    from thkit.cli import cli

    assert {"build", "plugins", "schema", "graph", "encode", "synth", "preprocess", "render", "demo"} <= set(cli.commands)
    for name in cli.commands:
        result = thkit(name, "--help")
        assert result.returncode == 0, name
        assert "Usage: thkit " + name in result.stdout


def test_build_check_prints_the_node_table():
    result = thkit("build", EXAMPLE, "--check")
    assert result.returncode == 0, result.stderr
    for text in ("mel", "coarse", "fuse", "Seq(80, 100)", "Seq(16, 50)", "code: Seq(96, 25)", "total"):
        assert text in result.stdout


def test_build_check_takes_no_training_options():
    result = thkit("build", EXAMPLE, "--check", "--resume")
    assert result.returncode == 2 and "--check only validates" in result.stderr


@pytest.mark.parametrize("name", ["many-problems", "yaml-syntax", "not-utf8", "cycle", "unknown-type"])
def test_bad_spec_exits_2_with_located_problems_and_no_traceback(name):
    result = thkit("build", f"{name}.yaml", "--check", cwd=BAD)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{name}.yaml:" in result.stderr and "problem" in result.stderr


def test_missing_spec_file_exits_2():
    result = thkit("build", "no-such-spec.yaml", "--check")
    assert result.returncode == 2 and "file not found" in result.stderr and "Traceback" not in result.stderr


def test_bad_set_override_exits_2():
    result = thkit("build", EXAMPLE, "--check", "--set", "nodes.mel.params.n_mels=-1")
    assert result.returncode == 2
    assert "--set nodes.mel.params.n_mels=-1: nodes.mel.params.n_mels: Input should be greater than or equal to 1" in result.stderr


def test_plugins_lists_builtins_without_importing_torch():
    result = thkit("plugins", python_flags=("-X", "importtime"))
    assert result.returncode == 0, result.stderr
    for name in ("mel", "concat"):
        assert name in result.stdout
    assert "│ mel " in result.stdout and "ok" in result.stdout  # component classes were really loaded ...
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "thkit.core.registry" in imported
    assert not {module for module in imported if module == "torch" or module.startswith("torch.")}  # ... without torch
    # importtime does not log importlib.import_module (how entry points load), so check sys.modules too.
    probe = "import sys; from click.testing import CliRunner; from thkit.cli import cli; CliRunner().invoke(cli, ['plugins']); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120).stdout.strip() == "False"


def test_validation_imports_no_torch():
    probe = (
        "import sys; from thkit.core.graph import load_graph; "
        f"load_graph({str(EXAMPLE)!r}); print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr


def test_schema_covers_component_params_and_validates_examples():
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    result = thkit("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["$defs"]["MelParams"]["properties"]["n_mels"]["default"] == 80
    variants = schema["$defs"]["NodeSpec"]["anyOf"]
    assert {(v["properties"]["kind"]["const"], v["properties"]["type"]["const"]) for v in variants} >= {("encoder", "mel"), ("fusion", "concat")}
    jsonschema.validate(yaml.safe_load(EXAMPLE.read_text()), schema)
    bad = yaml.safe_load(EXAMPLE.read_text())
    bad["nodes"]["mel"]["params"]["n_mel"] = 3
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_graph_prints_mermaid():
    result = thkit("graph", EXAMPLE)
    assert result.returncode == 0
    assert result.stdout.startswith("flowchart LR\n") and 'n_mel -- "features → fine" --> n_fuse' in result.stdout


def test_encode_writes_every_node_output(tmp_path):
    sample_rate = 22050  # not the graph's rate: decoding resamples
    seconds = 2.0
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    soundfile.write(tmp_path / "tone.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sample_rate)
    result = thkit("encode", EXAMPLE, "--audio", tmp_path / "tone.wav", "-o", tmp_path / "out.npz")
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "out.npz") as saved:
        assert saved["mel.features"].shape == (200, 80)
        assert saved["coarse.features"].shape == (100, 16)
        assert saved["fuse.code"].shape == (50, 96)
        assert str(saved["fuse.code.fps"]) == "25"
        assert str(saved["mel.features.port"]) == "Seq(80, 100)"


def test_encode_of_a_missing_file_exits_2(tmp_path):
    result = thkit("encode", EXAMPLE, "--audio", tmp_path / "none.wav", "-o", tmp_path / "out.npz")
    assert result.returncode == 2 and "none.wav" in result.stderr and "Traceback" not in result.stderr


def test_preprocess_of_a_file_that_is_not_a_video_exits_2(tmp_path):
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x01 not a video at all" * 100)
    result = thkit("preprocess", tmp_path / "clip.mp4", "-o", tmp_path / "dataset")
    assert result.returncode == 2 and "clip.mp4" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "dataset" / "dataset.json").exists()


def test_render_of_a_folder_that_is_not_a_run_exits_2(tmp_path):
    (tmp_path / "not-a-run").mkdir()
    result = thkit("render", tmp_path / "not-a-run", "--text", "Hello there.", "-o", tmp_path / "out.mp4")
    assert result.returncode == 2 and "not-a-run" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out.mp4").exists()


def test_render_needs_exactly_one_of_audio_or_text(tmp_path):
    result = thkit("render", tmp_path, "-o", tmp_path / "out.mp4")
    assert result.returncode == 2 and "exactly one of --audio FILE or --text" in result.stderr
