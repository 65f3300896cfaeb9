"""Mouth crops for the sync loss, and a sync stage that fits a sync encoder (and resumes exactly)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from thkit.core.graph import load_graph
from thkit.train import train
from thkit.train.mouth import CROP_SCALE, mouth_crops
from tests.train.conftest import FAST, metrics, write_spec
from tests.train.toys import toy_registry


def test_crops_are_centred_on_the_lip_box_at_one_size():
    width = height = 64
    ramp = (torch.arange(width) * 4).to(torch.uint8)  # grey 4j / 255 at pixel centre x = j + 0.5
    image = ramp[None, :, None].expand(height, width, 3).contiguous()
    boxes = torch.tensor([[20.0, 30.0, 30.0, 34.0], [24.0, 40.0, 36.0, 44.0], [22.0, 30.0, 34.0, 36.0]])
    subject = SimpleNamespace(lip_boxes=boxes, width=width, height=height, image=lambda index: (image, None), dataset=SimpleNamespace(root="x"))
    crops = mouth_crops(subject, [0, 1, 2], height=8, width=16)
    assert crops.shape == (3, 8, 16)
    crop_width = CROP_SCALE * 12.0  # the median of the boxes' sizes (10, 12, 12; heights x 2 are smaller)
    for index, box in enumerate(boxes.tolist()):
        centre = (box[0] + box[2]) / 2
        x = centre + (torch.arange(16) + 0.5 - 8) * crop_width / 16  # where each crop column samples
        assert torch.allclose(crops[index, 4], 4 * (x - 0.5) / 255, atol=1e-5)
        assert torch.allclose(crops[index, 0], crops[index, 7])  # rows are the same on a horizontal ramp


SYNC = """\
thkit: 1
name: synced
data: {{dataset: {dataset}}}
nodes:
  sync: {{kind: encoder, type: sync, params: {{dim: 16, mouth_height: 16, mouth_width: 32}}, inputs: {{audio: $audio}}}}
train:
  stages:
    - {{name: sync, train: [sync], steps: 4}}
"""


def test_sync_stage_fits_the_encoder_and_its_mouth_encoder_and_resumes_exactly(subject, tmp_path):
    spec = write_spec(tmp_path, SYNC.format(dataset=subject))
    options = FAST.__class__(**{**FAST.__dict__, "checkpoint_every": 2})  # fitted in chunks of 2 steps
    whole = train(spec, tmp_path / "whole", options=options, components=toy_registry(), progress=False)
    torch.manual_seed(0)
    initial = load_graph(spec, components=toy_registry()).build_modules()["sync"].state_dict()
    weights = load_file(whole / "weights.safetensors")
    assert not torch.equal(weights["sync.encoder.head.weight"], initial["encoder.head.weight"])
    aux = {key: value for key, value in load_file(whole / "state" / "tensors.safetensors").items() if key.startswith("aux.")}
    assert "aux.sync.visual.encoder.head.weight" in aux
    lines = metrics(whole)
    assert [(line["stage_step"], set(line["terms"]), line["psnr"]) for line in lines] == [(2, {"sync"}, None), (4, {"sync"}, None)]
    assert not (whole / "preview.mp4").exists()  # nothing to render

    def kill(stage: str, done: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(spec, tmp_path / "killed", options=options, components=toy_registry(), progress=False, callback=kill)
    resumed = train(spec, tmp_path / "killed", resume=True, options=options, components=toy_registry(), progress=False)
    again = load_file(resumed / "weights.safetensors")
    assert all(torch.equal(again[key], value) for key, value in weights.items())
    resumed_aux = load_file(resumed / "state" / "tensors.safetensors")
    assert all(torch.equal(resumed_aux[key], value) for key, value in aux.items())
    assert [line["loss"] for line in metrics(resumed)] == [line["loss"] for line in lines]
