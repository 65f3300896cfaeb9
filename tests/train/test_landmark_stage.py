"""A landmark predictor trained in a stage of its own on the tracked 3D landmarks (the decoupled
paper's stage 1): the trainer fills its neutral face from the data and applies the landmark losses."""

from __future__ import annotations

import numpy as np
import torch
from safetensors.torch import load_file

from thkit.core.registry import Registry
from thkit.data.layout import Dataset
from thkit.plugins.conditioning.landmark_transformer import LandmarkTransformer
from thkit.plugins.encoders.formant import FormantEncoder
from thkit.plugins.encoders.mel import MelEncoder
from thkit.train import train
from tests.train.conftest import FAST, metrics, write_spec

SPEC = """\
thkit: 1
name: a2l
data: {{dataset: {dataset}}}
nodes:
  mel: {{kind: encoder, type: mel, params: {{n_mels: 16, hop_ms: 20}}, inputs: {{audio: $audio}}}}
  formants: {{kind: encoder, type: formant, inputs: {{audio: $audio}}}}
  a2l:
    kind: conditioning
    type: landmark-transformer
    params: {{dim: 32, heads: 2, window: 8}}
    inputs: {{audio: mel.features, formant: formants.features, blink: $blink}}
outputs: {{landmarks: a2l.landmarks}}
train:
  stages:
    - {{name: a2l, train: [a2l], steps: 40, lr: 0.003, losses: {{landmarks_l1: 1.0, landmarks_velocity: 1.0}}}}
"""


def registry() -> Registry:
    components = Registry()
    for component, name in ((MelEncoder, "mel"), (FormantEncoder, "formant"), (LandmarkTransformer, "landmark-transformer")):
        components.register(component, name, "thkit")
    return components


def test_a_landmark_transformer_trains_on_the_tracked_landmarks_with_smooth_l1_and_velocity(subject, tmp_path):
    spec = write_spec(tmp_path, SPEC.format(dataset=subject))
    options = FAST.__class__(**{**FAST.__dict__, "preview_frames": 0})
    run = train(spec, tmp_path / "run", options=options, components=registry(), progress=False)
    lines = metrics(run)
    assert set(lines[0]["terms"]) == {"landmarks_l1", "landmarks_velocity"} and lines[0]["psnr"] is None
    assert lines[-1]["loss"] < 0.5 * lines[0]["loss"]
    dataset = Dataset(subject)
    train_frames = dataset.meta.train_frames
    tracked = torch.from_numpy(np.array(dataset.array("landmarks3d")))[train_frames.start : train_frames.stop]
    neutral = load_file(run / "weights.safetensors")["a2l.neutral"]
    assert torch.equal(neutral, tracked.median(dim=0).values)  # filled by the trainer, saved with the weights
