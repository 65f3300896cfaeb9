from fractions import Fraction

import pytest

from thkit.core.errors import SpecError
from thkit.core.graph import Ref, load_graph
from thkit.core.ports import Frames, Landmarks, Seq
from tests.core.test_bad_specs import corpus_registry

SPEC = """\
thkit: 1
name: hybrid
data: {synthetic: {seconds: 10, size: 128}, fps: 30000/1001}
nodes:
  head: {kind: renderer, type: toy-renderer, inputs: {audio: fuse.code, pose: $pose, landmarks: a2l.landmarks}}
  a2l:  {kind: conditioning, type: toy-landmarks, inputs: {features: mel.features}}
  fuse: {kind: fusion, type: concat, inputs: {fine: mel.features, coarse: coarse.features}}
  mel:  {kind: encoder, type: mel, inputs: {audio: $audio}}
  coarse: {kind: encoder, type: mel, params: {n_mels: 16, hop_ms: 20}, inputs: {audio: $audio}}
outputs: {video: head.rgb}
train:
  stages:
    - {name: a2l, train: [a2l], steps: 5}
    - {name: head, train: [fuse, head], steps: 5, feed: {a2l.landmarks: $landmarks}}
"""


def test_valid_spec_resolves_every_port_in_topological_order():
    graph = load_graph("hybrid.yaml", text=SPEC, components=corpus_registry())
    ntsc = Fraction(30000, 1001)
    assert list(graph.nodes) == ["mel", "coarse", "fuse", "a2l", "head"]
    assert graph.nodes["mel"].outputs == {"features": Seq(80, Fraction(100))}
    assert graph.nodes["coarse"].outputs == {"features": Seq(16, Fraction(50))}
    assert graph.nodes["fuse"].outputs == {"code": Seq(96, ntsc)}
    assert graph.nodes["a2l"].outputs == {"landmarks": Landmarks(68, 3, ntsc)}
    assert graph.nodes["head"].outputs == {"rgb": Frames(128, 128, ntsc)}
    assert graph.nodes["head"].inputs["audio"] == Ref("fuse", "code")
    assert graph.port(Ref(None, "pose")).fps == ntsc


def test_overrides_apply_before_validation():
    graph = load_graph("hybrid.yaml", text=SPEC, components=corpus_registry(), overrides=["nodes.coarse.params.n_mels=4", "data.fps=25"])
    assert graph.nodes["fuse"].outputs["code"] == Seq(84, Fraction(25))


def test_override_that_breaks_the_spec_is_reported_against_the_override():
    with pytest.raises(SpecError) as caught:
        load_graph("hybrid.yaml", text=SPEC, components=corpus_registry(), overrides=["nodes.mel.params.n_mels=40"])
    assert caught.value.problems[0].format() == (
        "hybrid.yaml:6:70: nodes.a2l.inputs.features: 'mel.features' cannot feed input 'features': expects width 80, got Seq(40, 100)"
    )


def test_mermaid_lists_every_node_and_edge():
    text = load_graph("hybrid.yaml", text=SPEC, components=corpus_registry()).to_mermaid()
    assert text.startswith("flowchart LR\n")
    for line in [
        'in_audio(["$audio<br/>Audio(16000)"])',
        'n_fuse["fuse<br/>fusion: concat"]',
        'n_mel -- "features → fine" --> n_fuse',
        'in_pose -- "pose" --> n_head',
        'n_a2l -- "landmarks → landmarks" --> n_head',
        'n_head -- "rgb" --> out_video',
    ]:
        assert line in text


def test_build_modules_constructs_each_node_once():
    graph = load_graph("hybrid.yaml", text=SPEC, components=corpus_registry())
    modules = graph.build_modules()
    assert list(modules) == list(graph.nodes)
    assert modules["a2l"].in_features == 80
    assert modules["head"].in_features == 96
    assert set(graph.build_modules(["mel"])) == {"mel"}


def test_computable_selects_the_nodes_the_given_inputs_feed():
    graph = load_graph("hybrid.yaml", text=SPEC, components=corpus_registry())
    assert graph.computable(["encoder", "fusion"], given=["audio"]) == ["mel", "coarse", "fuse"]
    assert graph.computable(["encoder", "fusion", "conditioning", "renderer"], given=["audio"]) == ["mel", "coarse", "fuse", "a2l"]
    assert graph.computable(["encoder", "fusion", "renderer"], given=["audio", "pose"])[-1] == "fuse"  # head needs a2l
    assert graph.computable(["encoder", "fusion", "conditioning", "renderer"], given=["audio", "pose"])[-1] == "head"


def test_run_nodes_names_a_missing_graph_input():
    import torch

    from thkit.core.runner import run_nodes
    from thkit.core.timebase import Timeline

    graph = load_graph("hybrid.yaml", text=SPEC, components=corpus_registry())
    modules = graph.build_modules(["mel"])
    with pytest.raises(ValueError, match=r"node 'mel' needs \$audio, which this run was not given"):
        run_nodes(graph, modules, {"pose": torch.eye(4)[None]}, Timeline(16000, 16000))


def test_context_comes_from_the_dataset_when_it_exists(tmp_path):
    import json

    (tmp_path / "dataset.json").write_text(json.dumps({"fps": "30000/1001", "height": 128, "width": 128, "n_frames": 900}))
    spec = SPEC.replace("data: {synthetic: {seconds: 10, size: 128}, fps: 30000/1001}", f"data: {{dataset: {tmp_path}}}")
    graph = load_graph("hybrid.yaml", text=spec, components=corpus_registry())
    assert graph.context.video_fps == Fraction(30000, 1001)
    assert (graph.context.image_size, graph.context.n_frames) == (128, 900)
    assert graph.nodes["head"].outputs["rgb"] == Frames(128, 128, Fraction(30000, 1001))


def test_synthetic_context_knows_its_frame_count():
    graph = load_graph("hybrid.yaml", text=SPEC, components=corpus_registry())
    assert graph.context.n_frames == 299  # 10 s at 30000/1001 fps
