from __future__ import annotations

import pytest

from thkit.core.graph import Graph, load_graph

MEL_SPEC = """\
thkit: 1
name: audio-test
data: {{synthetic: {{seconds: 1}}}}
nodes:
  mel:  {{kind: encoder, type: mel, params: {{n_mels: {n_mels}}}, inputs: {{audio: $audio}}}}
  fuse: {{kind: fusion, type: concat, inputs: {{a: mel.features}}}}
"""


def mel_graph(n_mels: int = 40) -> Graph:
    """A log-mel encoder feeding a concat fusion at the video rate (25 fps)."""
    return load_graph(text=MEL_SPEC.format(n_mels=n_mels))


@pytest.fixture
def graph() -> Graph:
    return mel_graph()
