"""The example plugin package, installed the way a user installs it, then used through `thkit`.

One throwaway virtualenv per module, made with --system-site-packages plus a .pth file naming the
running environment's site folders (a venv made from a venv sees only the base interpreter's
packages): thkit, torch, pip and setuptools come from here, so nothing is downloaded. The example
package is copied first, because pip builds in the source tree. thkit itself is not installed in
the venv, so its command runs as `python -m thkit.cli`, the function the `thkit` script calls.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import shutil
import site
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "thkit-encoder-example"

SPEC = """\
thkit: 1
name: energy-demo
data: {synthetic: {seconds: 2, size: 64}}
nodes:
  loud: {kind: encoder, type: energy-zcr, params: {hop_ms: 10}, inputs: {audio: $audio}}
  mel:  {kind: encoder, type: mel, params: {n_mels: 40}, inputs: {audio: $audio}}
  fuse: {kind: fusion, type: concat, params: {fps: video}, inputs: {loud: loud.features, mel: mel.features}}
outputs:
  code: fuse.code
"""


def run(*command: str | Path, cwd: Path | None = None, **switches: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("THKIT_PLUGINS", "THKIT_DISABLE_PLUGINS", "THKIT_CACHE")}
    env.update(COLUMNS="400", PYTHONIOENCODING="utf-8", PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", **switches)
    return subprocess.run([str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def checked(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"{result.args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


def table(stdout: str) -> list[list[str]]:
    """The body rows of a rich table, as lists of stripped cells."""
    return [[cell.strip() for cell in line.strip("│ ").split("│")] for line in stdout.splitlines() if line.startswith("│")]


def can_build_wheels_offline() -> bool:
    """--no-build-isolation builds with this environment's setuptools: it needs 70.1+, or `wheel` beside it."""
    if importlib.util.find_spec("setuptools") is None:
        return False
    import setuptools

    return tuple(int(part) for part in setuptools.__version__.split(".")[:2]) >= (70, 1) or importlib.util.find_spec("wheel") is not None


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the example package pip-installed (not editable) from a copy of its source."""
    if not can_build_wheels_offline():
        pytest.skip("installing the example offline needs setuptools>=70.1 (or setuptools and wheel) in this environment")
    root = tmp_path_factory.mktemp("example-plugin")
    env = root / "venv"
    checked(run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", env))
    python = env / "bin" / "python"
    purelib = Path(checked(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))")).stdout.strip())
    running = [*site.getsitepackages(), *([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])]
    (purelib / "_running_environment.pth").write_text("".join(f"import site; site.addsitedir({path!r})\n" for path in running))
    source = root / "thkit-encoder-example"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache"))
    checked(run(python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", source))
    return env


def thkit(venv: Path, *args: str | Path, cwd: Path, **switches: str) -> subprocess.CompletedProcess[str]:
    result = run(venv / "bin" / "python", "-m", "thkit.cli", *args, cwd=cwd, **switches)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_the_package_is_installed_in_the_venv_not_imported_from_source(venv: Path) -> None:
    where = checked(run(venv / "bin" / "python", "-c", "import thkit_encoder_example as m; print(m.__file__)")).stdout.strip()
    assert Path(where).is_relative_to(venv) and Path(where).parent.name == "thkit_encoder_example"


def test_thkit_plugins_lists_the_installed_encoder(venv: Path, tmp_path: Path) -> None:
    rows = {(row[0], row[1]): row[2:] for row in table(checked(thkit(venv, "plugins", cwd=tmp_path)).stdout)}
    assert rows["encoder", "energy-zcr"] == ["thkit-encoder-example", "0.1.0", "ok"]
    assert rows["encoder", "mel"][0::2] == ["thkit", "ok"]
    assert rows["fusion", "concat"][0::2] == ["thkit", "ok"]


def test_a_spec_mixing_the_plugin_with_built_ins_builds(venv: Path, tmp_path: Path) -> None:
    (tmp_path / "energy.yaml").write_text(SPEC)
    result = checked(thkit(venv, "build", "energy.yaml", "--check", cwd=tmp_path))
    assert table(result.stdout)[:3] == [
        ["loud", "encoder", "energy-zcr", "0", "features: Seq(3, 100)"],
        ["mel", "encoder", "mel", "0", "features: Seq(40, 100)"],
        ["fuse", "fusion", "concat", "0", "code: Seq(43, 25)"],
    ]
    assert "ok energy.yaml is valid and every module was constructed" in result.stdout


def test_thkit_encode_runs_the_plugin_on_a_wav(venv: Path, tmp_path: Path) -> None:
    (tmp_path / "energy.yaml").write_text(SPEC)
    seconds, rate = 1.5, 16000
    time = np.arange(int(seconds * rate)) / rate
    soundfile.write(tmp_path / "tone.wav", (0.5 * np.sin(2 * math.pi * 1000 * time + 0.3)).astype(np.float32), rate, subtype="FLOAT")
    cache = str(tmp_path / "cache")  # a fresh feature cache: the encoder really runs, and ~/.cache stays untouched
    checked(thkit(venv, "encode", "energy.yaml", "--audio", "tone.wav", "-o", "out.npz", cwd=tmp_path, THKIT_CACHE=cache))
    with np.load(tmp_path / "out.npz") as saved:
        features = saved["loud.features"]
        assert features.shape == (150, 3)
        assert (str(saved["loud.features.port"]), str(saved["loud.features.fps"])) == ("Seq(3, 100)", "100")
        assert saved["fuse.code"].shape == (37, 43)  # 1.5 s at 25 fps: 37 whole frames
    np.testing.assert_allclose(features[:, 0], 10 * math.log10(0.125), atol=1e-3)  # a sine of amplitude 0.5
    np.testing.assert_allclose(features[1:, 1], 0.125)  # 2000 crossings per second at 16 kHz
    np.testing.assert_allclose(features[:, 2], 0.125, atol=1e-4)  # 1 kHz over an 8 kHz Nyquist


def test_disabling_the_distribution_removes_its_encoder(venv: Path, tmp_path: Path) -> None:
    (tmp_path / "energy.yaml").write_text(SPEC)
    result = thkit(venv, "graph", "energy.yaml", cwd=tmp_path, THKIT_DISABLE_PLUGINS="thkit-encoder-example")
    assert result.returncode == 2
    assert "energy.yaml:5:31: nodes.loud.type: unknown encoder type 'energy-zcr'; installed encoders: " in result.stderr


def test_the_example_package_tests_pass_against_the_installed_copy(venv: Path) -> None:
    tests = venv.parent / "thkit-encoder-example" / "tests"
    # Without autoloading, unrelated pytest plugins of the running environment stay out of the run.
    result = checked(run(venv / "bin" / "python", "-m", "pytest", tests, "-q", "-p", "no:cacheprovider", cwd=tests, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1"))
    summary = result.stdout.strip().splitlines()[-1]
    assert re.match(r"\d+ passed", summary) and "skipped" not in summary, summary
