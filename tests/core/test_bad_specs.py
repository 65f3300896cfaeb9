"""The corpus of bad specs: every problem is reported, located, and worded as in its .expected file.

The registry here holds exactly the built-in `mel` and `concat` plus two strict test components,
so the "installed" listings in messages do not change when new plugins are installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from thkit.core.errors import SpecError
from thkit.core.graph import load_graph
from thkit.core.registry import Registry
from thkit.plugins.encoders.mel import MelEncoder
from thkit.plugins.fusion.concat import ConcatFusion
from tests.core.toy_components import TOYS

CORPUS = Path(__file__).parent / "bad_specs"
SPECS = sorted(CORPUS.glob("*.yaml"))


def corpus_registry() -> Registry:
    registry = Registry()
    registry.register(MelEncoder, "mel", "thkit")
    registry.register(ConcatFusion, "concat", "thkit")
    for name, component in TOYS.items():
        registry.register(component, name, "tests")
    return registry


def reported_problems(spec: Path) -> str:
    try:
        load_graph(spec.name, components=corpus_registry())
    except SpecError as error:
        return "\n".join(problem.format() for problem in error.problems) + "\n"
    raise AssertionError(f"{spec.name} validated without problems")


def test_corpus_is_large_enough():
    assert len(SPECS) >= 20


@pytest.mark.parametrize("spec", SPECS, ids=[spec.stem for spec in SPECS])
def test_bad_spec_reports_expected_problems(spec: Path, monkeypatch):
    monkeypatch.chdir(CORPUS)
    expected = spec.with_suffix(".expected").read_text(encoding="utf-8")
    assert reported_problems(spec) == expected


def test_python_tag_never_runs(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "python-tag.yaml").write_bytes((CORPUS / "python-tag.yaml").read_bytes())
    with pytest.raises(SpecError):
        load_graph("python-tag.yaml", components=corpus_registry())
    assert not (tmp_path / "pwned").exists()
