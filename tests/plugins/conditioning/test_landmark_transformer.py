"""`landmark-transformer`: audio features + formants -> 68 3D landmarks (the decoupled paper's stage 1)."""

from __future__ import annotations

from fractions import Fraction
from types import SimpleNamespace

import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load_file, save_file

from thkit.core import GraphContext, Landmarks, Seq, SpecError, Timeline
from thkit.core.graph import load_graph
from thkit.plugins.conditioning import _landmark_transformer_module as module_file
from thkit.plugins.conditioning.landmark_transformer import LandmarkTransformer
from thkit.render.edits import EYELID_PAIRS, SPEECH_POINTS, eye_opening, mouth_opening
from thkit.testing import check_component
from thkit.train.losses import LOSSES, LossInputs

SR = 16000
NTSC = Fraction(30000, 1001)
AUDIO = Seq(6, Fraction(50))  # e.g. hubert at 50 Hz, narrowed for speed
FORMANT = Seq(8, Fraction(100))
BLINK = Seq(1, Fraction(25))
OTHER_POINTS = [i for i in range(68) if i not in SPEECH_POINTS]


def make(params: dict | None = None, fps: Fraction = Fraction(25), audio: Seq = AUDIO, blink: bool = False) -> LandmarkTransformer:
    ports = {"audio": audio, "formant": FORMANT}
    if blink:
        ports["blink"] = Seq(1, fps)
    return LandmarkTransformer(LandmarkTransformer.Params(**(params or {})), ports, GraphContext(video_fps=fps))


def face(seed: int = 0) -> torch.Tensor:
    """A [68, 3] stand-in face about 1.4 units wide, with each inner-lip pair 0.01 apart."""
    points = torch.rand(68, 3, generator=torch.Generator().manual_seed(seed)) * torch.tensor([1.4, 1.4, 0.8]) - 0.7
    for upper, lower in ((61, 67), (62, 66), (63, 65)):
        points[lower] = points[upper] - torch.tensor([0.0, 0.01, 0.0])
    for upper, lower in EYELID_PAIRS:
        points[lower] = points[upper] - torch.tensor([0.0, 0.09, 0.0])
    return points


def built(params: dict | None = None, fps: Fraction = Fraction(25), *, blink: bool = False, seed: int = 0):
    """The module in eval mode, its neutral face set and its output head random (so it depends on the audio)."""
    torch.manual_seed(seed)
    module = make(params, fps, blink=blink).build().eval()
    module.fit_neutral(face()[None])
    torch.nn.init.normal_(module.head.weight, std=0.3)
    return module


def features(timeline: Timeline, seed: int = 0, audio: Seq = AUDIO) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "audio": torch.randn(timeline.frames(audio.fps), audio.dim, generator=g),
        "formant": torch.rand(timeline.frames(FORMANT.fps), FORMANT.dim, generator=g),
    }


def gap(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute difference (torch.testing.assert_close costs seconds of imports on first use)."""
    assert a.shape == b.shape
    return float((a - b).abs().max())


def run(module, inputs: dict, timeline: Timeline) -> torch.Tensor:
    with torch.no_grad():
        return module(inputs, timeline)["landmarks"]


# -- the contract and the ports ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "inputs"),
    [
        ({}, None),
        ({"causal": True, "window": 3, "layers": 1, "dim": 16, "heads": 2}, {"audio": Seq(10, NTSC), "formant": FORMANT}),
    ],
)
def test_contract(params, inputs):
    check_component(LandmarkTransformer, params=params, inputs=inputs, check_import=not params)


def test_ports_and_params():
    assert make().outputs() == {"landmarks": Landmarks(68, 3, Fraction(25))}
    assert make(fps=NTSC, audio=Seq(1024, Fraction(50))).outputs() == {"landmarks": Landmarks(68, 3, NTSC)}
    with pytest.raises(ValidationError, match="heads=3 must divide dim=64"):
        LandmarkTransformer.Params(heads=3)
    with pytest.raises(ValidationError):
        LandmarkTransformer.Params(windw=4)  # unknown keys are errors
    with pytest.raises(ValidationError):
        LandmarkTransformer.Params(window=0)


SPEC = """\
thkit: 1
name: a2l
data: {{synthetic: {{seconds: 2}}}}
nodes:
  mel: {{kind: encoder, type: mel, inputs: {{audio: $audio}}}}
  formants: {{kind: encoder, type: formant, inputs: {{audio: $audio}}}}
  a2l: {{kind: conditioning, type: landmark-transformer, inputs: {{audio: mel.features, formant: {formant}, blink: $blink}}}}
outputs: {{landmarks: a2l.landmarks}}
"""


def test_a_spec_wires_speech_formants_and_blink_and_checks_the_formant_width():
    graph = load_graph(text=SPEC.format(formant="formants.features"))
    assert graph.nodes["a2l"].outputs == {"landmarks": Landmarks(68, 3, Fraction(25))}
    with pytest.raises(SpecError) as caught:
        load_graph(text=SPEC.format(formant="mel.features"))
    [problem] = caught.value.problems
    assert problem.path == "nodes.a2l.inputs.formant"
    assert "expects width 8" in problem.message


@pytest.mark.parametrize("fps", [Fraction(25), Fraction(30), NTSC, Fraction(60)])
@pytest.mark.parametrize("n_samples", [0, 1, 500, 16000, 29_999, 47_123])
def test_output_rows_follow_the_timeline_exactly(fps, n_samples):
    module = built({"dim": 16, "heads": 2, "window": 4}, fps, blink=True)
    timeline = Timeline(n_samples, SR)
    inputs = features(timeline)
    inputs["blink"] = torch.rand(timeline.frames(fps), 1)
    landmarks = run(module, inputs, timeline)
    assert landmarks.shape == (timeline.frames(fps), 68, 3)
    assert landmarks.dtype == torch.float32 and bool(torch.isfinite(landmarks).all())


# -- what it predicts ----------------------------------------------------------------------------


def test_untrained_it_outputs_the_neutral_face_and_only_speech_points_move():
    torch.manual_seed(0)
    module = make().build().eval()
    timeline = Timeline(2 * SR, SR)
    assert torch.equal(run(module, features(timeline), timeline), torch.zeros(50, 68, 3))  # no neutral face yet
    module.fit_neutral(face()[None])
    assert torch.equal(run(module, features(timeline), timeline), face().expand(50, 68, 3))  # zero-initialised head
    module = built()
    landmarks = run(module, features(timeline), timeline)
    assert torch.equal(landmarks[:, OTHER_POINTS], face()[OTHER_POINTS].expand(50, -1, 3))
    moved = (landmarks[:, list(SPEECH_POINTS)] - face()[list(SPEECH_POINTS)]).norm(dim=-1)
    assert bool((moved > 0).all())


def test_offsets_are_in_units_of_the_neutral_face_box():
    module = built()
    timeline = Timeline(SR, SR)
    inputs = features(timeline)
    small = run(module, inputs, timeline) - face()
    module.fit_neutral(10 * face()[None])
    large = run(module, inputs, timeline) - 10 * face()
    assert gap(large, 10 * small) < 1e-4


def test_the_neutral_face_is_the_median_over_the_training_frames_and_is_saved():
    tracked = torch.randn(10, 68, 3, generator=torch.Generator().manual_seed(0))
    tracked[7:] = 100.0  # outside the train split: ignored
    subject = SimpleNamespace(train_frames=range(2, 7), array=lambda name: {"landmarks3d": tracked}[name])
    module = make().build()
    module.init_from_subject(subject)
    assert torch.equal(module.neutral, tracked[2:7].median(dim=0).values)
    assert "neutral" in module.state_dict() and "points" not in module.state_dict()
    with pytest.raises(ValueError, match="must be \\[frames > 0, 68, 3\\]"):
        module.fit_neutral(torch.zeros(0, 68, 3))


def test_blink_closes_the_eyelids_and_moves_nothing_else():
    module = built(blink=True)
    timeline = Timeline(2 * SR, SR)
    inputs = features(timeline)
    blink = torch.zeros(50, 1)
    blink[10], blink[20] = 1.0, 0.5
    opened = run(module, {**inputs, "blink": torch.zeros(50, 1)}, timeline)
    blinking = run(module, {**inputs, "blink": blink}, timeline)
    gaps = eye_opening(blinking)
    assert gaps[10].item() == pytest.approx(0, abs=1e-6)
    assert gaps[20].item() == pytest.approx(0.045, rel=1e-4)  # half the neutral gap of 0.09
    assert gap(eye_opening(opened), torch.full((50,), 0.09)) < 1e-6
    eyelids = [point for pair in EYELID_PAIRS for point in pair]
    others = [i for i in range(68) if i not in eyelids]
    assert torch.equal(blinking[:, others], opened[:, others])
    assert torch.equal(blinking[blink[:, 0] == 0], opened[blink[:, 0] == 0])


# -- which audio each frame sees -----------------------------------------------------------------


def perturb_rows(seq: torch.Tensor, fps: Fraction, keep) -> torch.Tensor:
    """Random changes to the rows (at `fps`) whose time span [i/fps, (i+1)/fps) fails `keep(start, stop)`."""
    out = seq.clone()
    g = torch.Generator().manual_seed(1)
    for i in range(seq.shape[0]):
        if not keep(Fraction(i) / fps, Fraction(i + 1) / fps):
            out[i] += 3.0 * torch.randn(seq.shape[1], generator=g)
    return out


def changed_audio(inputs: dict, keep) -> dict:
    return {"audio": perturb_rows(inputs["audio"], AUDIO.fps, keep), "formant": perturb_rows(inputs["formant"], FORMANT.fps, keep)}


@pytest.mark.parametrize("fps", [Fraction(25), NTSC])
def test_causal_frames_never_see_later_audio(fps):
    module = built({"causal": True, "window": 6, "layers": 2}, fps)
    timeline = Timeline(4 * SR, SR)
    inputs = features(timeline)
    t = 60
    end_of_t = Fraction(t + 1) / fps
    later = changed_audio(inputs, lambda start, stop: start < end_of_t)  # every row starting after frame t ends
    before, after = run(module, inputs, timeline), run(module, later, timeline)
    assert torch.equal(before[: t + 1], after[: t + 1])
    assert not torch.allclose(before[t + 1], after[t + 1])


def test_a_frame_sees_window_minus_one_frames_back_per_layer():
    module = built({"causal": True, "window": 3, "layers": 2})  # frame t reads frames t-4 .. t
    timeline = Timeline(4 * SR, SR)
    inputs = features(timeline)
    t = 60
    start_of_reach = Fraction(t - 4, 25)
    earlier = changed_audio(inputs, lambda start, stop: stop > start_of_reach)  # every row ending before frame t-4
    before, after = run(module, inputs, timeline), run(module, earlier, timeline)
    # Equal up to rounding: pool_to_frames averages through a running sum, which earlier rows enter.
    assert gap(before[t:], after[t:]) < 1e-4
    assert (before[t - 1] - after[t - 1]).abs().max() > 0.01


def test_centred_windows_look_ahead_half_a_window_per_layer():
    module = built({"causal": False, "window": 5, "layers": 2})  # frame t reads frames t-4 .. t+4
    timeline = Timeline(4 * SR, SR)
    inputs = features(timeline)
    t = 60
    end_of_t = Fraction(t + 1, 25)
    later = changed_audio(inputs, lambda start, stop: start < end_of_t)
    before, after = run(module, inputs, timeline), run(module, later, timeline)
    assert torch.equal(before[: t - 3], after[: t - 3])
    assert not torch.allclose(before[t - 3], after[t - 3])


def test_a_stream_gets_the_landmarks_of_the_whole_clip(monkeypatch):
    module = built({"causal": True, "window": 8})
    timeline = Timeline(12 * SR, SR)  # 300 frames: more than one block of queries
    inputs = features(timeline)
    whole = run(module, inputs, timeline)
    prefix = Timeline(int(11.2 * SR), SR)  # the first 280 frames, as a stream would have them
    rows = {name: inputs[name][: prefix.frames(port.fps)] for name, port in (("audio", AUDIO), ("formant", FORMANT))}
    assert gap(run(module, rows, prefix), whole[:280]) < 1e-5
    monkeypatch.setattr(module_file, "QUERY_BLOCK", 7)  # block boundaries anywhere change nothing
    assert gap(run(module, inputs, timeline), whole) < 1e-5


# -- training and saving -------------------------------------------------------------------------


def toy_clip(seconds: int, seed: int):
    """Speech-like features and the landmarks they drive: the jaw and lower lip open with a
    nonlinear function of audio channel 0 (pooled to frames), the mouth corners spread with F2."""
    timeline = Timeline(seconds * SR, SR)
    g = torch.Generator().manual_seed(seed)
    steps = torch.randn(timeline.frames(AUDIO.fps), AUDIO.dim, generator=g)
    audio = torch.nn.functional.avg_pool1d(steps.T[None], 5, 1, 2, count_include_pad=False)[0].T * 2  # smooth, like speech
    formant = torch.rand(timeline.frames(FORMANT.fps), FORMANT.dim, generator=g)
    frames = timeline.frames(25)
    opening = torch.sigmoid(3 * module_file.pool_to_frames(audio, AUDIO.fps, 25, frames)[:, 0])  # [frames] in 0..1
    spread = module_file.pool_to_frames(formant, FORMANT.fps, 25, frames)[:, 1]
    target = face().expand(frames, 68, 3).clone()
    lower = [5, 6, 7, 8, 9, 10, 11, 55, 56, 57, 58, 59, 65, 66, 67]
    target[:, lower, 1] -= 0.15 * opening[:, None]
    target[:, [48, 60], 0] -= 0.05 * spread[:, None]
    target[:, [54, 64], 0] += 0.05 * spread[:, None]
    return timeline, {"audio": audio, "formant": formant}, target


def landmark_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    inputs = LossInputs(landmarks=[(predicted, target)])
    return LOSSES["landmarks_l1"].compute(inputs) + LOSSES["landmarks_velocity"].compute(inputs)


def test_training_on_the_trainers_losses_learns_a_known_audio_to_mouth_map(tmp_path):
    torch.manual_seed(0)
    module = make({"dim": 32, "heads": 2, "window": 8}).build()
    timeline, inputs, target = toy_clip(6, seed=0)
    module.fit_neutral(target)
    optimizer = torch.optim.AdamW(module.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = landmark_loss(module(inputs, timeline)["landmarks"], target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]

    module.eval()
    unseen, unseen_inputs, unseen_target = toy_clip(4, seed=1)
    predicted = run(module, unseen_inputs, unseen)
    opening = torch.stack([mouth_opening(predicted), mouth_opening(unseen_target)])
    assert torch.corrcoef(opening)[0, 1] > 0.95
    motion = torch.stack([(landmarks - module.neutral)[:, list(SPEECH_POINTS)].flatten() for landmarks in (predicted, unseen_target)])
    assert torch.corrcoef(motion)[0, 1] > 0.95

    path = tmp_path / "a2l.safetensors"
    save_file(module.state_dict(), str(path))
    torch.manual_seed(1)
    loaded = make({"dim": 32, "heads": 2, "window": 8}).build().eval()
    loaded.load_state_dict(load_file(str(path)))
    assert torch.equal(loaded.neutral, module.neutral)
    assert torch.equal(run(loaded, unseen_inputs, unseen), predicted)
