"""Landmark edits (`--edit KEY=VALUE`): mouth_scale and eyes, their parser and their errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from thkit.core.errors import ThkitError
from thkit.render.edits import (
    EYELID_PAIRS,
    SPEECH_POINTS,
    apply_edits,
    check_edits,
    close_eyes,
    eye_opening,
    mouth_opening,
    parse_edits,
)

EYELIDS = [point for pair in EYELID_PAIRS for point in pair]


def neutral_face() -> torch.Tensor:
    """[68, 3]: a face with the lips together (inner gap 0.005) and the eyes open (lid gap 0.09)."""
    points = torch.rand(68, 3, generator=torch.Generator().manual_seed(0)) * 1.4 - 0.7
    for upper, lower in ((61, 67), (62, 66), (63, 65)):
        points[lower] = points[upper] - torch.tensor([0.0, 0.005, 0.0])
    for upper, lower in EYELID_PAIRS:
        points[lower] = points[upper] - torch.tensor([0.0, 0.09, 0.0])
    return points


def speaking(frames: int = 20) -> torch.Tensor:
    """[frames, 68, 3]: the jaw and lower lip opening and closing, the eyes blinking at frame 5."""
    neutral = neutral_face()
    opening = 0.1 * (1 - torch.cos(torch.linspace(0, 4 * torch.pi, frames)))  # 0 .. 0.2
    landmarks = neutral.expand(frames, 68, 3).clone()
    lower = [6, 7, 8, 9, 10, 56, 57, 58, 65, 66, 67]
    landmarks[:, lower, 1] -= opening[:, None]
    landmarks[:, [48, 54], 0] += torch.tensor([-0.02, 0.02]) * opening[:, None]
    landmarks[5] = close_eyes(landmarks[5], 0.8)
    return landmarks


def test_mouth_scale_scales_the_mouth_opening_and_moves_only_speech_points():
    landmarks, neutral = speaking(), neutral_face()
    openings = {scale: mouth_opening(apply_edits(landmarks, neutral, {"mouth_scale": scale})) for scale in (0.0, 0.5, 1.0, 1.5, 2.0)}
    assert torch.equal(openings[1.0], mouth_opening(landmarks))
    moving = mouth_opening(landmarks) > 0.01
    for low, high in ((0.0, 0.5), (0.5, 1.0), (1.0, 1.5), (1.5, 2.0)):
        assert bool((openings[high][moving] > openings[low][moving]).all()), (low, high)
    # The lips start 0.005 apart, so the opening is 0.005 + scale * (its motion).
    expected = 0.005 + 2.0 * (mouth_opening(landmarks) - 0.005)
    assert float((openings[2.0] - expected).abs().max()) < 1e-5
    assert float((openings[0.0] - 0.005).abs().max()) < 1e-6  # 0: the neutral mouth throughout
    edited = apply_edits(landmarks, neutral, {"mouth_scale": 1.5})
    others = [i for i in range(68) if i not in SPEECH_POINTS]
    assert torch.equal(edited[:, others], landmarks[:, others])
    offsets = edited[:, list(SPEECH_POINTS)] - neutral[list(SPEECH_POINTS)]
    assert float((offsets - 1.5 * (landmarks[:, list(SPEECH_POINTS)] - neutral[list(SPEECH_POINTS)])).abs().max()) < 1e-6


def test_eyes_closed_and_open_force_the_lids_and_nothing_else():
    landmarks, neutral = speaking(), neutral_face()
    assert eye_opening(landmarks)[5].item() == pytest.approx(0.018, rel=1e-4)  # the blink in the input
    closed = apply_edits(landmarks, neutral, {"eyes": "closed"})
    opened = apply_edits(landmarks, neutral, {"eyes": "open"})
    assert float(eye_opening(closed).abs().max()) < 1e-6
    assert float((eye_opening(opened) - 0.09).abs().max()) < 1e-6  # the neutral gap, the blink removed
    midpoints = [(landmarks[:, upper] + landmarks[:, lower]) / 2 for upper, lower in EYELID_PAIRS]
    for edited in (closed, opened):
        others = [i for i in range(68) if i not in EYELIDS]
        assert torch.equal(edited[:, others], landmarks[:, others])
        for (upper, lower), middle in zip(EYELID_PAIRS, midpoints, strict=True):  # lids move about their midpoint
            assert float(((edited[:, upper] + edited[:, lower]) / 2 - middle).abs().max()) < 1e-6


def test_edits_combine_and_leave_their_input_alone():
    landmarks, neutral = speaking(), neutral_face()
    before = landmarks.clone()
    both = apply_edits(landmarks, neutral, parse_edits(["mouth_scale=2", "eyes=closed"]))
    assert torch.equal(landmarks, before)
    assert float(eye_opening(both).abs().max()) < 1e-6
    assert bool((mouth_opening(both) >= mouth_opening(landmarks) - 1e-6).all())
    assert apply_edits(landmarks, neutral, {}) is landmarks


def test_close_eyes_takes_a_closure_per_frame():
    landmarks = neutral_face().expand(3, 68, 3)
    closed = close_eyes(landmarks, torch.tensor([0.0, 0.25, 1.0]))
    assert eye_opening(closed).tolist() == pytest.approx([0.09, 0.0675, 0.0], abs=1e-6)


def test_parse_edits_reads_numbers_and_words():
    assert parse_edits([]) == {}
    assert parse_edits(["mouth_scale=1.5", " eyes = Closed "]) == {"mouth_scale": 1.5, "eyes": "closed"}
    assert parse_edits(["mouth_scale=0", "eyes=open"]) == {"mouth_scale": 0.0, "eyes": "open"}
    assert check_edits({"mouth_scale": 2, "eyes": "OPEN"}) == {"mouth_scale": 2.0, "eyes": "open"}


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (["mouth_sclae=2"], "--edit mouth_sclae=2: unknown edit 'mouth_sclae' (did you mean 'mouth_scale'?)"),
        (["teeth=white"], "--edit teeth=white: unknown edit 'teeth'"),
        (["mouth_scale"], "--edit mouth_scale: expected KEY=VALUE"),
        (["=2"], "--edit =2: expected KEY=VALUE"),
        (["mouth_scale=big"], "--edit mouth_scale=big: mouth_scale takes a number >= 0"),
        (["mouth_scale=-1"], "--edit mouth_scale=-1: mouth_scale takes a number >= 0"),
        (["mouth_scale=inf"], "--edit mouth_scale=inf: mouth_scale takes a number >= 0"),
        (["eyes=clsoed"], "--edit eyes=clsoed: eyes takes closed or open, got 'clsoed' (did you mean 'closed'?)"),
        (["eyes=open", "eyes=closed"], "--edit eyes=closed: 'eyes' is given twice"),
    ],
)
def test_bad_edits_are_user_errors_that_say_what_to_type(pairs, message):
    with pytest.raises(ThkitError) as caught:
        parse_edits(pairs)
    assert caught.value.message.startswith(message), caught.value.message
    if "twice" not in message:
        assert caught.value.hint == "edits: mouth_scale=<number >= 0>, eyes=closed|open"


@pytest.mark.parametrize(("edits", "message"), [({"mouth_scale": True}, "mouth_scale takes a number"), ({"eyes": 1}, "eyes takes closed or open, got 1")])
def test_the_python_api_checks_values_too(edits, message):
    with pytest.raises(ThkitError, match=message):
        apply_edits(speaking(), neutral_face(), edits)


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="landmarks must be \\[frames, 68, 3\\]"):
        apply_edits(torch.zeros(68, 3), neutral_face(), {})
    with pytest.raises(ValueError, match="neutral must be \\[68, 3\\]"):
        apply_edits(speaking(), torch.zeros(1, 68, 3), {})


def test_parsing_edits_imports_no_torch():
    probe = "import sys; from thkit.render.edits import parse_edits; parse_edits(['eyes=open']); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr
