"""Exact rational time: the one mechanism that aligns every rate with every other.

Every rate is a `Fraction` (29.97 fps is 30000/1001, never 29.97), and every index is computed with
integer arithmetic, so a 30 fps video with 48 kHz audio stays in sync over any length: the peers'
float frame times drift by frames over an hour. The functions here return index arrays (numpy,
no torch) that `thkit.core.align` applies to tensors.

Conventions: row i of a sequence at rate r covers the time [i/r, (i+1)/r); a clip of n samples at
sample rate s lasts exactly n/s seconds and holds floor(n * r / s) whole rows at rate r.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

Rate = int | float | str | Fraction

# Float rates that mean the NTSC fractions, as FFmpeg reads them.
_NTSC = {23.976: Fraction(24000, 1001), 29.97: Fraction(30000, 1001), 59.94: Fraction(60000, 1001)}


def as_rate(value: Rate) -> Fraction:
    """Parse a rate given as 25, "30000/1001", 29.97 (NTSC) or a Fraction; must be positive."""
    if isinstance(value, bool):
        raise ValueError(f"not a rate: {value!r}")
    if isinstance(value, float):
        rate = _NTSC.get(round(value, 3), Fraction(value).limit_denominator(1001))
    else:
        try:
            rate = Fraction(value)
        except (ValueError, ZeroDivisionError, TypeError):
            raise ValueError(f"not a rate: {value!r} (use a number such as 25 or a ratio such as 30000/1001)") from None
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {value!r}")
    return rate


def format_rate(rate: Fraction) -> str:
    return str(rate.numerator) if rate.denominator == 1 else f"{rate.numerator}/{rate.denominator}"


def frame_count(n_in: int, in_rate: Rate, out_rate: Rate) -> int:
    """Whole rows at `out_rate` inside n_in rows (or samples) at `in_rate`: floor(n_in * out / in)."""
    ratio = as_rate(out_rate) / as_rate(in_rate)
    return (n_in * ratio.numerator) // ratio.denominator


@dataclass(frozen=True)
class Timeline:
    """The true length of a clip, from its audio, that every sequence in a run is sized against."""

    n_samples: int
    sample_rate: int
    source: str | None = None  # the file the audio came from, when there is one
    text: str | None = None  # what is said, when known (TTS input or a sidecar transcript)

    @property
    def seconds(self) -> Fraction:
        return Fraction(self.n_samples, self.sample_rate)

    def frames(self, fps: Rate) -> int:
        """Number of whole rows at `fps` in this clip."""
        return frame_count(self.n_samples, self.sample_rate, fps)

    def sample_span(self, index: int, fps: Rate) -> tuple[int, int]:
        """First and one-past-last audio sample of row `index` at `fps`."""
        rate = as_rate(fps)
        start = (index * self.sample_rate * rate.denominator) // rate.numerator
        stop = ((index + 1) * self.sample_rate * rate.denominator) // rate.numerator
        return start, stop


def _scaled(numerators: np.ndarray, ratio: Fraction, *, ceil: bool = False) -> np.ndarray:
    """floor (or ceil) of numerators * ratio, exactly, in int64."""
    product = numerators.astype(np.int64) * ratio.numerator
    if ceil:
        return -((-product) // ratio.denominator)
    return product // ratio.denominator


def frame_spans(n_out: int, out_rate: Rate, in_rate: Rate, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """For each output row, the input rows [start, stop) overlapping its time span.

    Returns int64 arrays of shape [n_out]; every span holds at least one row and lies in [0, n_in).
    """
    if n_out == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if n_in <= 0:
        raise ValueError("cannot align an empty sequence")
    ratio = as_rate(in_rate) / as_rate(out_rate)  # input rows per output row
    rows = np.arange(n_out + 1, dtype=np.int64)
    start = _scaled(rows[:-1], ratio)
    stop = _scaled(rows[1:], ratio, ceil=True)
    start = np.clip(start, 0, n_in - 1)
    stop = np.clip(np.maximum(stop, start + 1), 1, n_in)
    return start, stop


def window_indices(n_out: int, out_rate: Rate, in_rate: Rate, n_in: int, window: int) -> np.ndarray:
    """Indices of `window` input rows centred on each output row's centre time, clamped at the ends.

    Shape [n_out, window]. With window=16 at 50 Hz into 25 fps this is ER-NeRF's 16-feature window.
    An even window has one more row before the centre row than after it (offsets -w/2 .. w/2-1).
    """
    if n_out == 0:
        return np.zeros((0, window), dtype=np.int64)
    if n_in <= 0:
        raise ValueError("cannot align an empty sequence")
    ratio = as_rate(in_rate) / (2 * as_rate(out_rate))
    # Input row holding the output row's centre time (2j+1)/(2*out): floor((2j+1) * in / (2*out)).
    centre = _scaled(2 * np.arange(n_out, dtype=np.int64) + 1, ratio)
    offsets = np.arange(window, dtype=np.int64) - window // 2
    return np.clip(centre[:, None] + offsets[None, :], 0, n_in - 1)
