"""`thkit.testing.check_component` catches each kind of broken component."""

from __future__ import annotations

import sys
import textwrap

import pytest
from pydantic import BaseModel

from thkit.core import Accepts, Audio, Component, Params, Seq
from thkit.plugins.encoders.mel import MelEncoder
from thkit.testing import check_component


class Fine(Component):
    kind = "encoder"
    inputs = {"audio": Accepts(Audio)}

    def outputs(self):
        return {"features": Seq(2, self.context.video_fps)}

    def build(self):
        from tests.test_testing_modules import FineModule

        return FineModule()


def test_a_correct_component_passes_every_check():
    passed = check_component(Fine, check_import=False)
    assert "outputs match their ports exactly on two clip lengths, finite and deterministic" in passed


class LooseParams(BaseModel):
    x: int = 1


class Loose(Fine):
    Params = LooseParams


class WrongLength(Fine):
    def build(self):
        from tests.test_testing_modules import OffByOneModule

        return OffByOneModule()


class Random(Fine):
    def build(self):
        from tests.test_testing_modules import RandomModule

        return RandomModule()


class Missing(Fine):
    def outputs(self):
        return {"features": Seq(2, self.context.video_fps), "extra": Seq(1, self.context.video_fps)}


class NotAModule(Fine):
    def build(self):
        return lambda inputs, timeline: {}


@pytest.mark.parametrize(
    ("component", "message"),
    [
        (Loose, "Params should subclass thkit.core.Params"),
        (WrongLength, "has shape (49, 2), port Seq(2, 25) needs (50, 2)"),
        (Random, "differs between two eval-mode runs"),
        (Missing, "module returned ['features'], ports declare ['extra', 'features']"),
        (NotAModule, "build() must return a torch.nn.Module"),
    ],
)
def test_broken_components_fail_with_a_clear_message(component, message):
    with pytest.raises(AssertionError) as caught:
        check_component(component, check_import=False)
    assert message in str(caught.value)


def test_params_must_forbid_unknown_keys():
    class Permissive(Params):
        model_config = {"extra": "allow", "frozen": True}

    class Lax(Fine):
        Params = Permissive

    with pytest.raises(AssertionError, match="must set extra='forbid'"):
        check_component(Lax, check_import=False)


def test_a_component_module_that_imports_torch_is_caught(tmp_path, monkeypatch):
    (tmp_path / "heavy_component.py").write_text(
        textwrap.dedent(
            """
            import torch
            from thkit.core import Accepts, Audio, Component, Seq

            class Heavy(Component):
                kind = "encoder"
                inputs = {"audio": Accepts(Audio)}
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    import heavy_component

    try:
        with pytest.raises(AssertionError, match="imports torch; import it inside build"):
            check_component(heavy_component.Heavy)
    finally:
        sys.modules.pop("heavy_component", None)


def test_builtin_mel_passes_and_imports_without_torch():
    assert "imports without torch" in check_component(MelEncoder)
