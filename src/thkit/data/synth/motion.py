"""Head motion and blinks: smooth, random for a seed, and independent of the clip's length.

Every curve is a function of time drawn once from the seed (sums of slow sinusoids, blink times
from a renewal process), so a 6 s subject is the first 6 s of the 60 s subject with the same seed.
Frame i is sampled at the middle of its time span, (i + 1/2) / fps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

YAW_DEGREES = 10.0
PITCH_DEGREES = 10.0
ROLL_DEGREES = 5.0
TRANSLATION_DM = np.array([0.08, 0.05, 0.12])  # x, y, z
BLINK_INTERVAL = (2.0, 6.0)  # seconds between blinks
BLINK_CLOSE, BLINK_HOLD, BLINK_OPEN = 0.08, 0.06, 0.14  # seconds; the hold spans at least one 25 fps frame


@dataclass(frozen=True)
class Motion:
    angles: np.ndarray  # [N, 3] yaw, pitch, roll in degrees
    translation: np.ndarray  # [N, 3] dm, offset of the head from its rest position (camera axes)
    blink: np.ndarray  # [N] eyelid closure, 0 open .. 1 closed
    blink_times: np.ndarray  # [B] start of each blink in seconds


def frame_times(n_frames: int, fps: float) -> np.ndarray:
    return (np.arange(n_frames) + 0.5) / fps


def sample_motion(n_frames: int, fps: float, seed: int) -> Motion:
    """Head rotation, translation and blinks for n_frames frames."""
    motion_rng, blink_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    t = frame_times(n_frames, fps)
    angles = np.stack([_wander(t, motion_rng, a) for a in (YAW_DEGREES, PITCH_DEGREES, ROLL_DEGREES)], axis=1)
    translation = np.stack([_wander(t, motion_rng, a) for a in TRANSLATION_DM], axis=1)
    starts = _blink_starts(t[-1] + 1.0 if n_frames else 0.0, blink_rng)
    return Motion(angles=angles, translation=translation, blink=blink_curve(t, starts), blink_times=starts)


def rotation_matrix(angles: np.ndarray) -> np.ndarray:
    """[N, 3, 3] head-to-camera rotations for [N, 3] yaw (about y), pitch (about x), roll (about z) degrees."""
    yaw, pitch, roll = np.radians(angles).T
    c, s = np.cos, np.sin
    n = len(angles)
    ry = np.zeros((n, 3, 3))
    ry[:, 0, 0], ry[:, 0, 2], ry[:, 1, 1], ry[:, 2, 0], ry[:, 2, 2] = c(yaw), s(yaw), 1, -s(yaw), c(yaw)
    rx = np.zeros((n, 3, 3))
    rx[:, 0, 0], rx[:, 1, 1], rx[:, 1, 2], rx[:, 2, 1], rx[:, 2, 2] = 1, c(pitch), -s(pitch), s(pitch), c(pitch)
    rz = np.zeros((n, 3, 3))
    rz[:, 0, 0], rz[:, 0, 1], rz[:, 1, 0], rz[:, 1, 1], rz[:, 2, 2] = c(roll), -s(roll), s(roll), c(roll), 1
    return rz @ rx @ ry


def blink_curve(t: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Eyelid closure at times t for blinks starting at `starts`: ease shut, hold, ease open."""
    closure = np.zeros_like(t)
    for start in starts:
        local = t - start
        shutting = _smoothstep(local / BLINK_CLOSE)
        opening = 1 - _smoothstep((local - BLINK_CLOSE - BLINK_HOLD) / BLINK_OPEN)
        closure = np.maximum(closure, np.minimum(shutting, opening))
    return closure


def _blink_starts(duration: float, rng: np.random.Generator) -> np.ndarray:
    starts = [rng.uniform(0.5, 2.5)]
    while starts[-1] < duration:
        starts.append(starts[-1] + rng.uniform(*BLINK_INTERVAL))
    return np.array(starts[:-1])


def _wander(t: np.ndarray, rng: np.random.Generator, amplitude: float, components: int = 4) -> np.ndarray:
    """A smooth random curve within +-amplitude: slow sinusoids, softly pushed towards the limits."""
    freqs = rng.uniform(0.04, 0.35, components)
    phases = rng.uniform(0, 2 * np.pi, components)
    weights = rng.uniform(0.5, 1.0, components)
    wave = (weights[:, None] * np.sin(2 * np.pi * freqs[:, None] * t[None] + phases[:, None])).sum(axis=0) / weights.sum()
    return amplitude * np.tanh(1.8 * wave) / np.tanh(1.8)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)
