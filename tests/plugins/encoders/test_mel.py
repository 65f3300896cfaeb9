import numpy as np
import torch

from thkit.core import GraphContext, Timeline
from thkit.core.ports import Audio
from thkit.plugins.encoders.mel import MelEncoder, MelParams


def run_mel(audio: np.ndarray, **params) -> torch.Tensor:
    component = MelEncoder(MelParams(**params), {"audio": Audio(16000)}, GraphContext())
    module = component.build().eval()
    timeline = Timeline(audio.shape[0], 16000)
    return module({"audio": torch.from_numpy(audio.astype(np.float32))}, timeline)["features"]


def test_a_tone_lights_the_band_that_holds_its_frequency():
    import librosa

    t = np.arange(16000) / 16000
    features = run_mel(0.5 * np.sin(2 * np.pi * 1000 * t), n_mels=40)
    assert features.shape == (100, 40)
    centres = librosa.mel_frequencies(n_mels=42, fmin=55, fmax=7600)[1:-1]
    assert abs(centres[int(features[50].argmax())] - 1000) < 120


def test_frames_are_exact_for_any_length_and_hop():
    for n_samples in (0, 159, 160, 16001, 48007):
        assert run_mel(np.zeros(n_samples)).shape == (n_samples // 160, 80)
        assert run_mel(np.zeros(n_samples), hop_ms=20, win_ms=40).shape == (n_samples // 320, 80)


def test_silence_is_finite_and_at_the_floor():
    features = run_mel(np.zeros(1600))
    assert torch.isfinite(features).all() and torch.allclose(features, torch.full_like(features, np.log(1e-6)), atol=1e-3)


def test_row_i_reflects_the_audio_in_its_own_time_span():
    """An impulse at sample 4000 (row 25 at 100 Hz) shows most energy in row 25, not its neighbours."""
    audio = np.zeros(16000)
    audio[4000 + 80] = 1.0  # centre of row 25's span [4000, 4160)
    energy = run_mel(audio).exp().sum(dim=1)
    assert int(energy.argmax()) == 25
