from pathlib import Path

import pytest

from thkit.data.layout import Dataset


@pytest.fixture(scope="session")
def subject(tmp_path_factory) -> Dataset:
    """A 1 s, 64 px synthetic subject (25 frames)."""
    from thkit.data.synth import generate

    root = Path(tmp_path_factory.mktemp("renderers")) / "subject"
    generate(root, seconds=1, size=64, progress=False)
    return Dataset(root)
