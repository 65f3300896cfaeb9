"""The `formant` encoder on synthetic vowels whose formants are known exactly."""

import numpy as np
import pytest
import torch
from scipy import signal

from thkit.core import Audio, GraphContext, PortMismatch, Timeline
from thkit.plugins.encoders.formant import BANDWIDTH_SCALE_HZ, CHANNELS, FORMANT_SCALE_HZ, FormantEncoder, FormantParams
from thkit.testing import check_component

SR = 16000
F1, F2, F3, VOICED, INTENSITY = 0, 1, 2, CHANNELS.index("voiced"), CHANNELS.index("intensity")
# Five resonances below 5500 Hz, as in real speech (Burg fits five; fewer leaves spurious poles).
VOWEL_A = ((700, 80), (1220, 90), (2600, 120), (3500, 150), (4500, 200))
VOWEL_I = ((300, 60), (2300, 100), (3000, 120), (3700, 150), (4700, 200))


def vowel(resonances, seconds: float, f0: float) -> np.ndarray:
    """A glottal pulse train (low-passed impulses) through a cascade of two-pole resonators."""
    n = int(seconds * SR)
    pulses = np.zeros(n)
    pulses[:: int(SR / f0)] = 1.0
    out = signal.lfilter(*signal.butter(1, 0.05), pulses)
    for frequency, bandwidth in resonances:
        r, theta = np.exp(-np.pi * bandwidth / SR), 2 * np.pi * frequency / SR
        a = [1.0, -2 * r * np.cos(theta), r * r]
        out = signal.lfilter([sum(a)], a, out)  # unit gain at 0 Hz
    return 0.5 * out / np.abs(out).max()


def encode(audio: np.ndarray, **params) -> np.ndarray:
    module = FormantEncoder(FormantParams(**params), {"audio": Audio(SR)}, GraphContext()).build()
    timeline = Timeline(audio.shape[0], SR)
    return module({"audio": torch.from_numpy(audio.astype(np.float32))}, timeline)["features"].numpy()


@pytest.fixture(scope="module")
def two_vowels() -> np.ndarray:
    """0.5 s silence, 1 s /a/, 0.5 s silence, 1 s /i/, 0.5 s silence: rows 50-150 and 200-300 voiced."""
    silence = np.zeros(SR // 2)
    return np.concatenate([silence, vowel(VOWEL_A, 1.0, 120), silence, vowel(VOWEL_I, 1.0, 150), silence])


def test_contract():
    check_component(FormantEncoder)


def test_recovers_f1_f2_f3_of_synthetic_vowels(two_vowels):
    features = encode(two_vowels)
    assert features.shape == (350, 8) and features.dtype == np.float32
    for rows, resonances in ((slice(60, 140), VOWEL_A), (slice(210, 290), VOWEL_I)):
        assert features[rows, VOICED].min() == 1.0
        measured = np.median(features[rows, F1 : F3 + 1], axis=0) * FORMANT_SCALE_HZ
        truth = np.array([frequency for frequency, _ in resonances[:3]])
        assert np.all(np.abs(measured - truth) / truth < 0.10), (measured, truth)
        bandwidths = np.median(features[rows, 3:6], axis=0) * BANDWIDTH_SCALE_HZ
        assert np.all(bandwidths < 400), bandwidths  # sharp resonances read as narrow


def test_silence_is_masked_and_interpolated(two_vowels):
    features = encode(two_vowels)
    silent = np.r_[0:40, 160:190, 310:350]  # clear of the onsets, which the analysis windows smear
    assert features[silent, VOICED].max() == 0.0
    assert features[silent, INTENSITY].max() == 0.0  # digital silence is the floor
    assert features[60:140, INTENSITY].min() > 0.5
    voiced = np.flatnonzero(features[:, VOICED])
    last_a, first_i = voiced[voiced < 175].max(), voiced[voiced > 175].min()
    assert first_i - last_a > 30
    # Before the first and after the last voiced row the formants hold; in the gap they are a line.
    assert np.all(features[: voiced[0], :6] == features[voiced[0], :6])
    assert np.all(features[voiced[-1] :, :6] == features[voiced[-1], :6])
    gap = np.arange(last_a, first_i + 1)
    line = features[last_a, :6] + np.outer((gap - last_a) / (first_i - last_a), features[first_i, :6] - features[last_a, :6])
    assert np.allclose(features[gap, :6], line, atol=1e-5)


def test_unvoiced_noise_and_no_voicing_at_all():
    noise = 0.1 * np.random.default_rng(0).standard_normal(SR)  # a long /s/: loud but unvoiced
    features = encode(noise)
    assert features[:, VOICED].max() == 0.0
    assert features[10:90, INTENSITY].min() > 0.7
    assert np.allclose(features[:, F1 : F3 + 1] * FORMANT_SCALE_HZ, [500, 1500, 2500])  # the neutral vowel


def test_rows_are_exact_for_any_length():
    for n_samples in (0, 159, 160, 500, 16001):
        assert encode(np.zeros(n_samples)).shape == (n_samples // 160, 8)


def test_max_formant_must_fit_the_sample_rate():
    component = FormantEncoder(FormantParams(max_formant=5500), {"audio": Audio(8000)}, GraphContext())
    with pytest.raises(PortMismatch, match="Nyquist"):
        component.outputs()
