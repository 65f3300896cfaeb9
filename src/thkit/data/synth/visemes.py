"""Phones to mouth shapes: viseme targets per phone, blended with coarticulation.

Each CMU phone has a target mouth (jaw drop, lip parting, rounding, spreading) and a dominance:
the mouth at time t is the dominance-weighted mean of the targets of the phones around t, each
phone's dominance decaying with distance from its middle (Cohen and Massaro's model). Vowels
dominate the jaw; alveolars and velars barely constrain the lips, so they take their shape from
the neighbouring vowels. Bilabials (m, b, p) are a hard constraint instead: the lips close for the
whole phone (plus 10 ms), easing in and out over 50 ms, whatever the jaw does. So lip motion
follows phonetic content, not loudness.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# phone: (jaw, part, round, spread, dominance)
VISEMES: dict[str, tuple[float, float, float, float, float]] = {
    "AA": (1.00, 0.45, 0.00, 0.10, 1.0),
    "AE": (0.85, 0.45, 0.00, 0.50, 1.0),
    "AH": (0.75, 0.35, 0.00, 0.15, 0.9),
    "AO": (0.85, 0.35, 0.55, 0.00, 1.0),
    "AW": (0.85, 0.35, 0.35, 0.00, 1.0),
    "AY": (0.90, 0.40, 0.00, 0.25, 1.0),
    "EH": (0.55, 0.35, 0.00, 0.35, 0.9),
    "ER": (0.35, 0.20, 0.45, 0.00, 0.8),
    "EY": (0.50, 0.35, 0.00, 0.45, 0.9),
    "IH": (0.35, 0.30, 0.00, 0.45, 0.8),
    "IY": (0.25, 0.25, 0.00, 0.75, 0.9),
    "OW": (0.55, 0.25, 0.85, 0.00, 1.0),
    "OY": (0.55, 0.25, 0.65, 0.00, 1.0),
    "UH": (0.35, 0.20, 0.65, 0.00, 0.9),
    "UW": (0.25, 0.15, 1.00, 0.00, 1.0),
    "W": (0.15, 0.10, 1.00, 0.00, 1.0),
    "R": (0.25, 0.15, 0.55, 0.00, 0.6),
    "L": (0.35, 0.25, 0.00, 0.10, 0.4),
    "Y": (0.20, 0.20, 0.00, 0.50, 0.5),
    "F": (0.12, 0.05, 0.00, 0.10, 0.9),
    "V": (0.12, 0.05, 0.00, 0.10, 0.9),
    "TH": (0.25, 0.25, 0.00, 0.10, 0.5),
    "DH": (0.25, 0.25, 0.00, 0.10, 0.3),
    "S": (0.15, 0.25, 0.00, 0.40, 0.5),
    "Z": (0.15, 0.25, 0.00, 0.40, 0.4),
    "SH": (0.20, 0.25, 0.55, 0.00, 0.7),
    "ZH": (0.20, 0.25, 0.55, 0.00, 0.7),
    "CH": (0.20, 0.25, 0.50, 0.00, 0.7),
    "JH": (0.20, 0.25, 0.50, 0.00, 0.7),
    "T": (0.25, 0.20, 0.00, 0.10, 0.3),
    "D": (0.25, 0.20, 0.00, 0.10, 0.3),
    "N": (0.25, 0.15, 0.00, 0.10, 0.3),
    "K": (0.30, 0.20, 0.00, 0.05, 0.3),
    "G": (0.30, 0.20, 0.00, 0.05, 0.3),
    "NG": (0.30, 0.15, 0.00, 0.05, 0.3),
    "HH": (0.40, 0.30, 0.00, 0.10, 0.2),
    "M": (0.15, 0.00, 0.00, 0.00, 0.8),
    "B": (0.15, 0.00, 0.00, 0.00, 0.8),
    "P": (0.15, 0.00, 0.00, 0.00, 0.8),
    "SIL": (0.00, 0.00, 0.00, 0.00, 0.7),
}
BILABIALS = frozenset({"M", "B", "P"})
OPEN_VOWELS = frozenset({"AA", "AE", "AH"})
CLOSURE_MARGIN = 0.01  # s the lips stay shut beyond a bilabial's acoustic boundaries
CLOSURE_EASE = 0.05  # s to shut or open the lips around a bilabial
REACH = 0.6  # s beyond which a phone no longer affects the mouth


@dataclass(frozen=True)
class Phone:
    label: str  # CMU phone without stress ("AA", "M", ...) or "SIL"
    start: float  # seconds
    end: float
    word: str = ""
    onset: bool = False  # the first phone of its word


def mouth_parameters(phones: list[Phone], times: np.ndarray) -> np.ndarray:
    """[N, 5] jaw, part, round, spread, close at `times` (seconds)."""
    total = np.zeros((len(times), 4))
    weight = np.zeros(len(times))
    close = np.zeros(len(times))
    for phone in phones:
        jaw, part, round_, spread, dominance = VISEMES.get(phone.label, VISEMES["SIL"])
        centre = (phone.start + phone.end) / 2
        first, last = np.searchsorted(times, [centre - REACH, centre + REACH])
        if first == last:
            continue
        span = slice(first, last)
        # Dominance falls off over a time constant that grows with the phone's length.
        tau = 0.035 + 0.35 * (phone.end - phone.start)
        d = dominance * np.exp(-np.abs(times[span] - centre) / tau)
        total[span] += d[:, None] * np.array([jaw, part, round_, spread])
        weight[span] += d
        if phone.label in BILABIALS:
            outside = np.maximum(phone.start - CLOSURE_MARGIN - times[span], times[span] - phone.end - CLOSURE_MARGIN)
            close[span] = np.maximum(close[span], 1 - _smoothstep(outside / CLOSURE_EASE))
    shape = total / np.maximum(weight, 1e-6)[:, None]
    return np.column_stack([shape, close])


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)
