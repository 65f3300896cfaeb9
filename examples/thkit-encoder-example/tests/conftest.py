"""Let the tests run from a source checkout too: without an installed copy, import from src/.

Installed (`pip install -e .` or not), the package is imported from where pip put it and this does
nothing. From a bare checkout, src/ goes on sys.path here and on PYTHONPATH for the subprocess in
which `check_component` proves that the component class imports without torch.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
INSTALLED = importlib.util.find_spec("thkit_encoder_example") is not None

if not INSTALLED:
    sys.path.insert(0, str(SRC))


@pytest.fixture(autouse=True)
def _source_on_pythonpath(monkeypatch: pytest.MonkeyPatch) -> None:
    if not INSTALLED:
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])))
