"""`encode_audio` (file or text, sidecar transcripts, the feature cache), `.npz` output and the plot."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from tests.audio.conftest import MEL_SPEC
from tests.audio.media import tone, write_soundfile
from thkit.audio.cache import FeatureCache
from thkit.audio.encode import encode_audio, plot_encoding, save_npz
from thkit.cli import main
from thkit.core.errors import ThkitError
from thkit.core.graph import Graph, load_graph
from thkit.core.ports import Landmarks, Seq
from thkit.plugins.encoders._mel_module import MelModule

RATE = 16000


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    """1.5 s of stereo 48 kHz tone bursts, with a transcript beside it."""
    burst = np.concatenate([tone(0.25, 48000, 300.0, 0.5), np.zeros(12000, np.float32)])
    path = write_soundfile(tmp_path / "clip.wav", np.tile(burst, 3)[:, None].repeat(2, axis=1), 48000, "PCM_16")
    path.with_suffix(".txt").write_text("one two three\n")
    return path


def test_a_file_is_encoded_with_its_timeline_and_sidecar_transcript(graph: Graph, clip: Path) -> None:
    encoding = encode_audio(graph, clip)
    assert encoding.timeline.n_samples == encoding.audio.shape[0] == int(1.5 * RATE)
    assert encoding.timeline.sample_rate == RATE
    assert encoding.timeline.source == str(clip)
    assert encoding.timeline.text == "one two three"
    assert list(encoding) == ["mel.features", "fuse.code"]
    port, mel = encoding["mel.features"]
    assert port == Seq(40, Fraction(100)) and mel.shape == (150, 40)
    port, code = encoding["fuse.code"]
    assert port == Seq(40, Fraction(25)) and code.shape == (int(1.5 * 25), 40)
    loud = mel.max(axis=1)  # bursts at 0-0.25, 0.5-0.75, 1.0-1.25 s
    assert loud[5:20].min() > loud[30:45].max() + 5


def test_without_a_sidecar_the_timeline_has_no_text(graph: Graph, clip: Path) -> None:
    clip.with_suffix(".txt").unlink()
    assert encode_audio(graph, clip).timeline.text is None


def test_text_is_spoken_and_encoded(graph: Graph) -> None:
    encoding = encode_audio(graph, text="Good morning, everyone.")
    assert encoding.timeline.text == "Good morning, everyone."
    assert encoding.timeline.source is None
    seconds = encoding.timeline.n_samples / RATE
    assert 0.75 <= seconds <= 3.0
    assert encoding["mel.features"][1].shape == (encoding.timeline.frames(100), 40)


def test_exactly_one_of_file_and_text(graph: Graph, clip: Path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        encode_audio(graph)
    with pytest.raises(ValueError, match="exactly one"):
        encode_audio(graph, clip, text="hello")


def test_only_nodes_computed_from_audio_alone_run(clip: Path) -> None:
    """A fusion that also reads tracked data (here `$mouth`) cannot run on an audio file."""
    spec = MEL_SPEC.format(n_mels=8) + "  mixed: {kind: fusion, type: concat, inputs: {a: mel.features, b: $mouth}}\n"
    assert list(encode_audio(load_graph(text=spec), clip)) == ["mel.features", "fuse.code"]
    only_tracked = (
        "thkit: 1\nname: tracked\ndata: {synthetic: {seconds: 1}}\n"
        "nodes:\n  fuse: {kind: fusion, type: concat, inputs: {a: $mouth}}\n"
    )
    with pytest.raises(ThkitError, match="no encoder or fusion nodes that run on audio"):
        encode_audio(load_graph(text=only_tracked), clip)


def test_the_second_encoding_is_served_from_the_cache(graph: Graph, clip: Path, tmp_path: Path, monkeypatch) -> None:
    cache = FeatureCache(tmp_path / "features")
    first = encode_audio(graph, clip, cache=cache)

    def broken(self, inputs, timeline):
        raise AssertionError("the mel encoder ran again")

    monkeypatch.setattr(MelModule, "forward", broken)
    second = encode_audio(graph, clip, cache=cache)
    for key, (port, array) in first.items():
        assert second[key][0] == port
        np.testing.assert_array_equal(second[key][1], array)


def test_save_npz_round_trips_without_pickle(graph: Graph, clip: Path, tmp_path: Path) -> None:
    encoding = encode_audio(graph, clip)
    path = tmp_path / "out" / "clip.npz"
    save_npz(encoding, path)
    with np.load(path, allow_pickle=False) as saved:
        np.testing.assert_array_equal(saved["mel.features"], encoding["mel.features"][1])
        assert str(saved["mel.features.port"]) == "Seq(40, 100)"
        assert str(saved["fuse.code.fps"]) == "25"
    assert [p.name for p in path.parent.iterdir()] == ["clip.npz"]


def test_plot_draws_the_waveform_and_every_output_on_one_time_axis(tmp_path: Path) -> None:
    seconds = 2.0
    audio = tone(seconds, RATE, 200.0, 0.5)
    results = {
        "mel.features": (Seq(40, Fraction(100)), np.random.default_rng(0).normal(size=(200, 40)).astype(np.float32)),
        "mouth.open": (Seq(1, Fraction(25)), np.linspace(0, 1, 50, dtype=np.float32)[:, None]),
        "a2l.landmarks": (Landmarks(68, 3, Fraction(30000, 1001)), np.zeros((59, 68, 3), np.float32)),
    }
    path = plot_encoding(results, audio, RATE, tmp_path / "plot.png", title="a tone")
    image = imread(path)
    assert image.shape[1] == 1200 and image.shape[0] == pytest.approx(100 * 1.8 * 4, abs=2)
    assert image[..., :3].std() > 0.1  # not blank
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]


def test_the_cli_reports_a_bad_audio_file_with_status_2(tmp_path: Path, capsys) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(MEL_SPEC.format(n_mels=8))
    bad = tmp_path / "notes.wav"
    bad.write_text("not sound")
    with pytest.raises(SystemExit) as exited:
        main(["encode", str(spec), "--audio", str(bad), "-o", str(tmp_path / "out.npz")])
    assert exited.value.code == 2
    stderr = capsys.readouterr().err
    assert "notes.wav" in stderr and "not a readable audio or video file" in stderr
    assert "Traceback" not in stderr
