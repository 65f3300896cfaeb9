"""`concat`: exact mean-pooled alignment onto the output rate, with optional learned smoothing."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch

from thkit.core import GraphContext, Seq, Timeline
from thkit.plugins.fusion.concat import ConcatFusion
from thkit.testing import check_component

SR = 16000
NTSC = Fraction(30000, 1001)


def build(params: dict, fps: Fraction = Fraction(25)):
    ports = {"fast": Seq(1, Fraction(100)), "slow": Seq(1, Fraction(50))}
    component = ConcatFusion(ConcatFusion.Params(**params), ports, GraphContext(video_fps=fps))
    return component, component.build().eval()


def ramps(timeline: Timeline) -> dict[str, torch.Tensor]:
    """Row i of the 100 Hz stream holds i; row i of the 50 Hz stream holds 10 i."""
    return {
        "fast": torch.arange(timeline.frames(100), dtype=torch.float32)[:, None],
        "slow": 10 * torch.arange(timeline.frames(50), dtype=torch.float32)[:, None],
    }


@pytest.mark.parametrize("smooth", [0, 8])
def test_contract(smooth):
    check_component(ConcatFusion, params={"smooth": smooth}, check_import=smooth == 0)


def test_mean_pooling_onto_25_fps_by_hand():
    component, module = build({})
    assert component.outputs() == {"code": Seq(2, Fraction(25))}
    timeline = Timeline(1920, SR)  # 0.12 s: 3 frames, 12 rows at 100 Hz, 6 at 50 Hz
    code = module(ramps(timeline), timeline)["code"]
    # Frame j covers 100 Hz rows 4j .. 4j+3 (mean 4j + 1.5) and 50 Hz rows 2j, 2j+1 (mean 10 (2j + 0.5)).
    assert code.tolist() == [[1.5, 5.0], [5.5, 25.0], [9.5, 45.0]]
    assert not list(module.parameters())  # smooth=0: no learned part, as before the parameter existed


def test_mean_pooling_onto_ntsc_by_hand():
    component, module = build({}, fps=NTSC)
    assert component.outputs()["code"].fps == NTSC
    timeline = Timeline(1760, SR)  # 0.11 s: 3 NTSC frames (3.297), 11 rows at 100 Hz, 5 at 50 Hz
    code = module(ramps(timeline), timeline)["code"]
    # Frame j spans [j, j+1) * 1001/30000 s = 100 Hz rows [3.3367 j, 3.3367 (j+1)) and 50 Hz rows
    # [1.66833 j, 1.66833 (j+1)). Every row it overlaps counts: 100 Hz rows 0-3, 3-6, 6-10;
    # 50 Hz rows 0-1, 1-3, and 3-5 clamped to the clip's last whole row, 4.
    expected = [[1.5, 5.0], [4.5, 20.0], [8.0, 35.0]]
    torch.testing.assert_close(code, torch.tensor(expected))


def test_smoothing_starts_as_a_moving_average_of_the_unsmoothed_code():
    _, plain = build({})
    _, smoothed = build({"smooth": 2})
    timeline = Timeline(SR, SR)  # 25 frames
    inputs = {"fast": torch.randn(100, 1), "slow": torch.randn(50, 1)}
    before = plain(inputs, timeline)["code"]
    with torch.no_grad():
        after = smoothed(inputs, timeline)["code"]
    # A window of 2 is frames t-1 and t (frame 0 pairs with itself).
    expected = torch.cat([before[:1], (before[:-1] + before[1:]) / 2])
    torch.testing.assert_close(after, expected)
    assert smoothed.smoother.mix.in_features == 2
