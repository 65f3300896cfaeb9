"""Every example spec validates; the audio specs encode speech end to end (tiny local models stand in
for the pretrained HuBERT / wav2vec2 weights, which cannot be downloaded here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from thkit.core.graph import load_graph
from tests.plugins.encoders.test_hubert import save_tiny

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


NEEDS_LPIPS_WEIGHTS = {"damc", "landmark"}  # their lips (and torso) stages use LPIPS, whose backbone weights cannot be downloaded here


@pytest.mark.parametrize("spec", EXAMPLES, ids=[spec.stem for spec in EXAMPLES])
def test_example_validates(spec: Path, tmp_path, monkeypatch):
    if spec.stem in NEEDS_LPIPS_WEIGHTS:
        from thkit.core.errors import SpecError

        monkeypatch.setenv("THKIT_WEIGHTS", str(tmp_path / "weights"))
        with pytest.raises(SpecError) as caught:
            load_graph(spec)
        assert all("lpips" in problem.message for problem in caught.value.problems)
        assert str(tmp_path / "weights" / "lpips") in caught.value.message
        return
    graph = load_graph(spec)
    assert graph.nodes


@pytest.mark.parametrize(
    ("spec", "node", "family", "expected"),
    [
        ("damc-audio", "content", "hubert", {"content.features": 32, "sync.features": 512, "fuse.code": 64}),
        ("landmark-audio", "speech", "wav2vec2", {"speech.features": 32, "formants.features": 8, "features.code": 40}),
    ],
)
def test_audio_example_encodes_speech(tmp_path, spec, node, family, expected):
    from thkit.audio.tts import synthesize_to_file

    weights = save_tiny(tmp_path / "weights", family)
    speech = tmp_path / "speech.wav"
    synthesize_to_file("The keeper climbed the stairs before dawn.", speech)
    result = subprocess.run(
        [sys.executable, "-m", "thkit", "encode", str(REPO / "examples" / f"{spec}.yaml"), "--audio", str(speech),
         "-o", str(tmp_path / "out.npz"), "--set", f"nodes.{node}.params.weights={weights}"],
        capture_output=True, text=True, timeout=300, env={**__import__("os").environ, "THKIT_CACHE": str(tmp_path / "cache")},
    )
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "out.npz") as saved:
        frames = saved[next(key for key in expected if key.endswith("code"))].shape[0]
        assert frames > 25  # more than a second of 25 fps frames
        for key, width in expected.items():
            assert saved[key].shape[1] == width, key
            assert np.isfinite(saved[key]).all()
        assert str(saved[[k for k in expected if k.endswith("code")][0] + ".fps"]) == "25"
