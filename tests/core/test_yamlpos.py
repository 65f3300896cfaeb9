import pytest

from thkit.core.errors import SpecError
from thkit.core.overrides import apply_overrides
from thkit.core.yamlpos import load_yaml, read_yaml_file

TEXT = """\
thkit: 1
name: demo
nodes:
  mel:
    params: {n_mels: 80}
train:
  stages:
    - {name: a, steps: 3}
"""


def test_values_and_keys_keep_line_and_column():
    data, positions = load_yaml(TEXT, "spec.yaml")
    assert data["nodes"]["mel"]["params"]["n_mels"] == 80
    assert positions.locate(("nodes", "mel", "params", "n_mels")) == ("spec.yaml", 5, 22)
    assert positions.locate(("nodes", "mel"), key=True) == ("spec.yaml", 4, 3)
    assert positions.locate(("train", "stages", 0, "steps")) == ("spec.yaml", 8, 24)
    # A path that does not exist is located at its nearest existing ancestor.
    assert positions.locate(("nodes", "mel", "params", "missing")) == ("spec.yaml", 5, 13)


def test_scalars_are_plain_python_values():
    data, _ = load_yaml("a: 1\nb: 2.5\nc: yes\nd: null\ne: '$audio'\nf: 30000/1001\n", "x")
    assert data == {"a": 1, "b": 2.5, "c": True, "d": None, "e": "$audio", "f": "30000/1001"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: !!python/name:os.system x\n", "unsupported YAML tag '!!python/name:os.system'"),
        ("a: !custom {b: 1}\n", "unsupported YAML tag '!custom'"),
        ("a: 1\n---\nb: 2\n", "expected one YAML document, found 2"),
        ("a: [1, 2\n", "YAML syntax error"),
        ("? [a, b]\n: 1\n", "mapping keys must be plain names"),
    ],
)
def test_unsafe_or_malformed_yaml_is_a_spec_error(text, message):
    with pytest.raises(SpecError) as caught:
        load_yaml(text, "x.yaml")
    assert message in caught.value.message


def test_missing_file_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError) as caught:
        read_yaml_file(tmp_path / "nope.yaml")
    assert "file not found" in caught.value.message


def test_overrides_set_nested_values_and_remember_their_origin():
    data, positions = load_yaml(TEXT, "spec.yaml")
    apply_overrides(data, positions, ["nodes.mel.params.n_mels=128", "train.stages.0.steps=10", "nodes.new.kind=encoder", "name=x=y"])
    assert data["nodes"]["mel"]["params"]["n_mels"] == 128
    assert data["train"]["stages"][0]["steps"] == 10
    assert data["nodes"]["new"] == {"kind": "encoder"}
    assert data["name"] == "x=y"
    assert positions.locate(("nodes", "mel", "params", "n_mels")) == ("--set nodes.mel.params.n_mels=128", None, None)


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("nodes.mel.params.n_mels", "expected PATH=VALUE"),
        ("train.stages.first.steps=1", "is a list: address its items by number, not 'first'"),
        ("train.stages.5.steps=1", "has 1 items; index 5 is out of range"),
        ("name.first=1", "'name' is a value, not a mapping or list"),
    ],
)
def test_bad_overrides(assignment, message):
    data, positions = load_yaml(TEXT, "spec.yaml")
    with pytest.raises(SpecError) as caught:
        apply_overrides(data, positions, [assignment])
    assert message in caught.value.message
    assert f"--set {assignment}" in caught.value.message
