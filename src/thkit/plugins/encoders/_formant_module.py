"""The analysis side of the `formant` encoder: Praat (parselmouth) and numpy, wrapped as a module."""

from __future__ import annotations

import numpy as np
import parselmouth
import torch
from torch import Tensor, nn

from thkit.core import Timeline
from thkit.plugins.encoders.formant import (
    BANDWIDTH_SCALE_HZ,
    CHANNELS,
    FORMANT_SCALE_HZ,
    FPS,
    INTENSITY_FLOOR_DB,
    NEUTRAL_BANDWIDTH_HZ,
    NEUTRAL_FORMANTS_HZ,
    FormantParams,
)

N_FORMANTS = 3


class FormantModule(nn.Module):
    """No weights: a fixed analysis, so it is not differentiable (its features are cached)."""

    def __init__(self, component) -> None:
        super().__init__()
        self.params: FormantParams = component.params
        self.sample_rate = component.input_ports["audio"].sample_rate

    def forward(self, inputs: dict[str, Tensor], timeline: Timeline) -> dict[str, Tensor]:
        audio = inputs["audio"]
        samples = audio.detach().to("cpu", torch.float64).numpy()
        features = formant_features(samples, self.sample_rate, timeline.frames(FPS), self.params)
        return {"features": torch.from_numpy(features).to(audio.device)}


def formant_features(audio: np.ndarray, sample_rate: int, n_rows: int, params: FormantParams) -> np.ndarray:
    """[n_rows, 8] float32 in the channel layout of `thkit.plugins.encoders.formant`."""
    features = np.zeros((n_rows, len(CHANNELS)), dtype=np.float32)
    if n_rows == 0:
        return features
    times = (np.arange(n_rows) + 0.5) / float(FPS)
    sound = parselmouth.Sound(audio, sampling_frequency=sample_rate)
    frequencies, bandwidths = _burg(sound, times, params)  # [n_rows, 3] Hz, NaN where not found
    measured = _voiced(sound, times, params) & np.isfinite(frequencies).all(axis=1) & np.isfinite(bandwidths).all(axis=1)
    frequencies = _fill_unmeasured(frequencies, measured, NEUTRAL_FORMANTS_HZ)
    bandwidths = _fill_unmeasured(bandwidths, measured, (NEUTRAL_BANDWIDTH_HZ,) * N_FORMANTS)
    features[:, 0:3] = frequencies / FORMANT_SCALE_HZ
    features[:, 3:6] = np.clip(bandwidths / BANDWIDTH_SCALE_HZ, 0.0, 1.0)
    features[:, 6] = measured
    features[:, 7] = _intensity(audio, sample_rate, n_rows, params.window_ms)
    return features


def _burg(sound: parselmouth.Sound, times: np.ndarray, params: FormantParams) -> tuple[np.ndarray, np.ndarray]:
    nan = np.full((times.shape[0], N_FORMANTS), np.nan)
    try:
        formant = sound.to_formant_burg(
            time_step=1 / float(FPS),
            max_number_of_formants=5,
            maximum_formant=params.max_formant,
            window_length=params.window_ms / 1000,
        )
    except parselmouth.PraatError:  # a clip shorter than the analysis window
        return nan, nan.copy()
    # Praat interpolates linearly between its frames and answers NaN outside them.
    frequencies = np.array([[formant.get_value_at_time(k, t) for k in range(1, N_FORMANTS + 1)] for t in times])
    bandwidths = np.array([[formant.get_bandwidth_at_time(k, t) for k in range(1, N_FORMANTS + 1)] for t in times])
    return frequencies.reshape(nan.shape), bandwidths.reshape(nan.shape)


def _voiced(sound: parselmouth.Sound, times: np.ndarray, params: FormantParams) -> np.ndarray:
    try:
        pitch = sound.to_pitch(time_step=1 / float(FPS), pitch_floor=params.pitch_floor, pitch_ceiling=params.pitch_ceiling)
    except parselmouth.PraatError:
        return np.zeros(times.shape[0], dtype=bool)
    return np.isfinite(np.array([pitch.get_value_at_time(t) for t in times], dtype=float))


def _fill_unmeasured(values: np.ndarray, measured: np.ndarray, neutral: tuple[float, ...]) -> np.ndarray:
    """Linear interpolation across unmeasured rows, held constant beyond the first and last measured."""
    rows = np.flatnonzero(measured)
    if rows.size == 0:
        return np.broadcast_to(np.asarray(neutral), values.shape).copy()
    everywhere = np.arange(values.shape[0])
    return np.stack([np.interp(everywhere, rows, values[rows, k]) for k in range(values.shape[1])], axis=1)


def _intensity(audio: np.ndarray, sample_rate: int, n_rows: int, window_ms: float) -> np.ndarray:
    """RMS level of a window centred on each row, in dBFS mapped from [-100, 0] to [0, 1]."""
    centres = ((2 * np.arange(n_rows, dtype=np.int64) + 1) * sample_rate) // (2 * int(FPS))
    half = max(1, round(sample_rate * window_ms / 2000))
    lo = np.clip(centres - half, 0, audio.shape[0])
    hi = np.clip(centres + half, 0, audio.shape[0])
    energy = np.concatenate([[0.0], np.cumsum(np.square(audio, dtype=np.float64))])
    mean_square = (energy[hi] - energy[lo]) / np.maximum(hi - lo, 1)
    level = 10 * np.log10(np.maximum(mean_square, 10 ** (INTENSITY_FLOOR_DB / 10)))
    return np.clip((level - INTENSITY_FLOOR_DB) / -INTENSITY_FLOOR_DB, 0.0, 1.0)
