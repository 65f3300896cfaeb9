"""ER-NeRF-style learned temporal smoothing, shared by the concat and csfm fusions."""

from __future__ import annotations

import pytest
import torch

from thkit.plugins.fusion._smoothing import TemporalSmoother


def test_starts_as_the_exact_moving_average_over_a_centred_clamped_window():
    smoother = TemporalSmoother(dim=2, window=4)
    code = torch.stack([torch.arange(6.0), 10 * torch.arange(6.0)], dim=1)  # rows (i, 10 i)
    assert torch.equal(smoother.weights(code), torch.full((6, 4), 0.25))
    # Window of 4 is frames t-2 .. t+1, clamped at the ends: row 0 averages frames 0, 0, 0, 1.
    expected = torch.tensor([0.25, 0.75, 1.5, 2.5, 3.5, 4.25])
    smoothed = smoother(code)
    torch.testing.assert_close(smoothed[:, 0], expected)
    torch.testing.assert_close(smoothed[:, 1], 10 * expected)


def test_window_one_is_the_identity_and_a_constant_stays_constant():
    code = torch.randn(9, 5)
    torch.testing.assert_close(TemporalSmoother(5, 1)(code), code)
    constant = torch.full((7, 3), 2.5)
    torch.testing.assert_close(TemporalSmoother(3, 8)(constant), constant)
    assert TemporalSmoother(3, 8)(torch.zeros(0, 3)).shape == (0, 3)
    with pytest.raises(ValueError, match="at least 1"):
        TemporalSmoother(3, 0)


def test_output_at_t_depends_only_on_its_window():
    torch.manual_seed(0)
    smoother = TemporalSmoother(4, 8)
    nn_init = smoother.mix.weight.data
    nn_init.normal_()  # trained-looking, non-uniform weights
    code = torch.randn(30, 4)
    far = code.clone()
    far[:10] += 5  # frame 15 sees frames 11 .. 18
    far[19:] -= 5
    with torch.no_grad():
        assert torch.equal(smoother(code)[15], smoother(far)[15])
        near = code.clone()
        near[18] += 1
        assert not torch.allclose(smoother(code)[15], smoother(near)[15])


def test_learns_to_sharpen_towards_the_frame_itself():
    torch.manual_seed(0)
    smoother = TemporalSmoother(3, 8)
    code = torch.randn(64, 3)
    optimizer = torch.optim.Adam(smoother.parameters(), lr=0.05)
    first = None
    for _ in range(60):
        loss = (smoother(code) - code).square().mean()  # the identity is reachable: all weight on t
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.2 * first
    assert smoother.weights(code)[:, 4].mean() > 0.6  # frame t sits at index window // 2
