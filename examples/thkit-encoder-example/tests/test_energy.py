"""The energy-zcr encoder: thkit's component contract, its ports, and the values it computes."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch

from thkit.core import Audio, GraphContext, PortMismatch, Seq, Timeline
from thkit.testing import check_component
from thkit_encoder_example.energy import EnergyZcrEncoder

RATE = 16000
HOP = 160  # 10 ms at 16 kHz


def encoder(sample_rate: int = RATE, **params: object) -> EnergyZcrEncoder:
    return EnergyZcrEncoder(EnergyZcrEncoder.Params(**params), {"audio": Audio(sample_rate)}, GraphContext())


def features(audio: torch.Tensor, **params: object) -> torch.Tensor:
    module = encoder(**params).build().eval()
    return module({"audio": audio}, Timeline(audio.shape[0], RATE))["features"]


def tone(hz: float, seconds: float, amplitude: float = 0.5) -> torch.Tensor:
    time = torch.arange(round(seconds * RATE), dtype=torch.float64) / RATE
    # A phase offset keeps samples off exact zeros, so each half period has exactly one sign change.
    return (amplitude * torch.sin(2 * math.pi * hz * time + 0.3)).float()


@pytest.mark.parametrize(
    "params", [{}, {"hop_ms": 20, "centroid": False, "normalise": True}], ids=["defaults", "coarse-normalised"]
)
def test_follows_the_component_contract(params: dict) -> None:
    passed = check_component(EnergyZcrEncoder, params=params)
    assert "imports without torch" in passed
    assert "outputs match their ports exactly on two clip lengths, finite and deterministic" in passed


def test_output_port_follows_params_and_sample_rate() -> None:
    assert encoder().outputs() == {"features": Seq(3, Fraction(100))}
    assert encoder(hop_ms=20, centroid=False).outputs() == {"features": Seq(2, Fraction(50))}
    assert encoder(48000, hop_ms=10).outputs() == {"features": Seq(3, Fraction(100))}
    assert encoder(22050, hop_ms=20).outputs() == {"features": Seq(3, Fraction(22050, 441))}


def test_refuses_a_hop_that_is_not_whole_samples() -> None:
    with pytest.raises(PortMismatch) as caught:
        encoder(hop_ms=10.01).outputs()
    assert caught.value.input_name is None
    assert caught.value.message == "hop_ms=10.01 is not a whole number of samples at 16000 Hz"


def test_a_1khz_sine_gives_its_energy_zcr_and_centroid() -> None:
    rows = features(tone(1000, 1.0, amplitude=0.5))
    assert rows.shape == (100, 3)
    # Mean power of a sine of amplitude A is A^2 / 2: 10 * log10(0.125) = -9.03 dB in every row.
    torch.testing.assert_close(rows[:, 0], torch.full((100,), 10 * math.log10(0.125)), atol=1e-3, rtol=0)
    # 2000 crossings per second at 16 kHz is 0.125 per sample pair: 20 in each 160-sample row,
    # except row 0, whose first sample has no predecessor (19 / 160).
    assert rows[0, 1].item() == pytest.approx(19 / 160)
    torch.testing.assert_close(rows[1:, 1], torch.full((99,), 0.125))
    # 1 kHz over a Nyquist of 8 kHz; 10 whole periods per row put it exactly on an FFT bin.
    torch.testing.assert_close(rows[:, 2], torch.full((100,), 0.125), atol=1e-4, rtol=0)


def test_zcr_and_centroid_track_the_pitch_of_a_tone() -> None:
    rows = features(tone(440, 1.0))
    assert rows[:, 1].mean().item() == pytest.approx(880 / RATE, abs=1e-3)  # 880 crossings per second
    assert rows[:, 2].mean().item() == pytest.approx(440 / 8000, abs=2e-3)


def test_silence_gives_the_floor() -> None:
    rows = features(torch.zeros(RATE // 2))
    assert rows.shape == (50, 3)
    assert torch.equal(rows, torch.tensor([[-100.0, 0.0, 0.0]]).expand(50, 3))


def test_row_i_covers_exactly_samples_i_hop_to_i_plus_1_hop() -> None:
    audio = torch.zeros(RATE)
    audio[5 * HOP : 6 * HOP] = tone(1000, HOP / RATE)
    energy = features(audio)[:, 0]
    assert energy[5].item() == pytest.approx(10 * math.log10(0.125), abs=1e-3)
    assert torch.equal(energy[torch.arange(100) != 5], torch.full((99,), -100.0))


def test_row_count_is_the_timeline_frame_count_on_an_awkward_length() -> None:
    audio = tone(300, 0.7319)  # 11710 samples: 73 whole rows, the last 30 samples belong to no row
    rows = features(audio)
    assert Timeline(audio.shape[0], RATE).frames(100) == 73
    assert rows.shape == (73, 3)


def test_normalise_standardises_each_column() -> None:
    audio = torch.cat([tone(200, 0.5, amplitude=0.1), tone(2000, 0.5, amplitude=0.8)])
    rows = features(audio, normalise=True)
    torch.testing.assert_close(rows.mean(dim=0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(rows.std(dim=0, correction=0), torch.ones(3), atol=1e-4, rtol=0)
    assert torch.equal(features(torch.zeros(RATE), normalise=True), torch.zeros(100, 3))
