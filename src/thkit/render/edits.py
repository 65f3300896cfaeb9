"""Landmark edits: change what a landmark-driven head does before it is drawn (`--edit KEY=VALUE`).

The decoupled Gaussian-landmark NeRF joins audio and image only through 68 facial landmarks, so
its motion can be edited where it is explicit: exaggerate or damp the speech movements, force the
eyes shut or open. Edits act on landmarks in canonical head space ([frames, 68, 3], iBUG order,
as `$landmarks` and the `landmark-transformer` output are) relative to the subject's neutral shape
([68, 3], e.g. the landmark transformer's `neutral` buffer).

Edits:

- `mouth_scale=S` (a number >= 0): the jaw and mouth points (0-16 and 48-67, the points the
  landmark transformer predicts) move S times as far from the neutral shape: 1 is unchanged, 1.5
  exaggerates, 0.5 damps, 0 holds the neutral mouth.
- `eyes=closed|open`: closed moves each upper eyelid point and its lower partner to their midpoint;
  open gives each pair the neutral shape's lid gap around the same midpoint, so the lids keep any
  other motion of the eye region. Blink in the data is the same measure (closure = 1 - gap / open
  gap, `thkit.data.preprocess.signals`), and `close_eyes` is how the landmark transformer applies a
  `blink` input.

This module imports no torch, so parsing `--edit` values is cheap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from thkit.core.errors import ThkitError, did_you_mean

if TYPE_CHECKING:
    from jaxtyping import Float
    from torch import Tensor

JAW = tuple(range(0, 17))
MOUTH = tuple(range(48, 68))
SPEECH_POINTS = JAW + MOUTH  # the 37 points that speech moves (the decoupled paper's predicted set)
EYELID_PAIRS = ((37, 41), (38, 40), (43, 47), (44, 46))  # (upper, lower) lid points facing each other
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))  # (upper, lower): the mouth opening is their gap

EditValue = float | str


@dataclass(frozen=True)
class Edit:
    """One edit key: how its value is read, and what it takes (for messages)."""

    parse: Callable[[object], EditValue | None]  # the value, normalised, or None when it is not valid
    takes: str  # what values it takes, in words
    usage: str  # KEY=VALUE form


def _scale(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


EYE_STATES = ("closed", "open")


def _eyes(value: object) -> str | None:
    word = value.strip().lower() if isinstance(value, str) else None
    return word if word in EYE_STATES else None


EDITS: dict[str, Edit] = {
    "mouth_scale": Edit(
        _scale, "a number >= 0 (1 unchanged, above 1 exaggerates the jaw and mouth motion, below 1 damps it)", "mouth_scale=<number >= 0>"
    ),
    "eyes": Edit(_eyes, "closed or open", "eyes=closed|open"),
}
USAGE = "edits: " + ", ".join(edit.usage for edit in EDITS.values())


def parse_edits(pairs: Iterable[str]) -> dict[str, EditValue]:
    """`--edit KEY=VALUE` strings -> {key: value}, checked; a ThkitError names the first bad one."""
    edits: dict[str, EditValue] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        key = key.strip()
        if not equals or not key:
            raise ThkitError(f"--edit {pair}: expected KEY=VALUE", hint=USAGE)
        if key in edits:
            raise ThkitError(f"--edit {pair}: '{key}' is given twice", hint="give each edit once")
        edits[key] = _checked(key, value.strip(), f"--edit {pair}")
    return edits


def check_edits(edits: Mapping[str, object]) -> dict[str, EditValue]:
    """Edits given as a mapping (the Python API), checked and normalised like `parse_edits`."""
    return {key: _checked(key, value, f"edit {key}={value!r}") for key, value in edits.items()}


def _checked(key: str, value: object, where: str) -> EditValue:
    if key not in EDITS:
        raise ThkitError(f"{where}: unknown edit '{key}'{did_you_mean(key, EDITS)}", hint=USAGE)
    parsed = EDITS[key].parse(value)
    if parsed is None:
        raise ThkitError(f"{where}: {key} takes {EDITS[key].takes}, got {value!r}{_suggestion(key, value)}", hint=USAGE)
    return parsed


def _suggestion(key: str, value: object) -> str:
    return did_you_mean(value.strip().lower(), EYE_STATES) if key == "eyes" and isinstance(value, str) else ""


def apply_edits(
    landmarks: Float[Tensor, "frames 68 3"], neutral: Float[Tensor, "68 3"], edits: Mapping[str, object]
) -> Float[Tensor, "frames 68 3"]:
    """`landmarks` with `edits` applied (see the module docstring); the input is returned unchanged
    when there are no edits, and never modified in place."""
    if landmarks.ndim != 3 or tuple(landmarks.shape[1:]) != (68, 3):
        raise ValueError(f"landmarks must be [frames, 68, 3], got {list(landmarks.shape)}")
    if tuple(neutral.shape) != (68, 3):
        raise ValueError(f"neutral must be [68, 3], got {list(neutral.shape)}")
    checked = check_edits(edits)
    neutral = neutral.to(landmarks)
    if "mouth_scale" in checked:
        landmarks = scale_speech(landmarks, neutral, float(checked["mouth_scale"]))
    if checked.get("eyes") == "closed":
        landmarks = close_eyes(landmarks, 1.0)
    elif checked.get("eyes") == "open":
        landmarks = open_eyes(landmarks, neutral)
    return landmarks


def scale_speech(landmarks: Float[Tensor, "frames 68 3"], neutral: Float[Tensor, "68 3"], scale: float) -> Float[Tensor, "frames 68 3"]:
    """The jaw and mouth points `scale` times as far from `neutral`; every other point unchanged."""
    points = list(SPEECH_POINTS)
    out = landmarks.clone()
    out[:, points] = neutral[points] + scale * (landmarks[:, points] - neutral[points])
    return out


def close_eyes(landmarks: Float[Tensor, "*frames 68 3"], closure: float | Float[Tensor, "*frames"]) -> Float[Tensor, "*frames 68 3"]:
    """Each eyelid pair's gap times (1 - closure), about its midpoint: 0 leaves the lids, 1 shuts them.

    `closure` is one number or one per frame (a `$blink`-like signal); differentiable in both."""
    upper, lower = [pair[0] for pair in EYELID_PAIRS], [pair[1] for pair in EYELID_PAIRS]
    amount = closure if isinstance(closure, float | int) else closure[..., None, None]
    top, bottom = landmarks[..., upper, :], landmarks[..., lower, :]
    middle = (top + bottom) / 2
    out = landmarks.clone()
    out[..., upper, :] = top + amount * (middle - top)
    out[..., lower, :] = bottom + amount * (middle - bottom)
    return out


def open_eyes(landmarks: Float[Tensor, "frames 68 3"], neutral: Float[Tensor, "68 3"]) -> Float[Tensor, "frames 68 3"]:
    """Each eyelid pair set to the neutral shape's gap about the pair's own midpoint in that frame."""
    upper, lower = [pair[0] for pair in EYELID_PAIRS], [pair[1] for pair in EYELID_PAIRS]
    middle = (landmarks[:, upper] + landmarks[:, lower]) / 2
    half_gap = (neutral[upper] - neutral[lower]) / 2
    out = landmarks.clone()
    out[:, upper] = middle + half_gap
    out[:, lower] = middle - half_gap
    return out


def mouth_opening(landmarks: Float[Tensor, "*frames 68 3"]) -> Float[Tensor, "*frames"]:
    """Mean gap of the inner-lip pairs (61-67, 62-66, 63-65), in the landmarks' units."""
    upper, lower = [pair[0] for pair in INNER_LIP_PAIRS], [pair[1] for pair in INNER_LIP_PAIRS]
    return (landmarks[..., upper, :] - landmarks[..., lower, :]).norm(dim=-1).mean(dim=-1)


def eye_opening(landmarks: Float[Tensor, "*frames 68 3"]) -> Float[Tensor, "*frames"]:
    """Mean gap of the eyelid pairs, in the landmarks' units."""
    upper, lower = [pair[0] for pair in EYELID_PAIRS], [pair[1] for pair in EYELID_PAIRS]
    return (landmarks[..., upper, :] - landmarks[..., lower, :]).norm(dim=-1).mean(dim=-1)
