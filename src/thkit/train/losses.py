"""Training losses, by the names a stage's `losses: {name: weight}` uses.

A stage's loss is the weighted sum of its terms. Each term is a function of one step's `LossInputs`
(its docstring is what `thkit` shows for it). A few facts about each term steer the trainer:

- `patches`: the term compares image structure, so the stage samples square patches in the lip
  box (ER-NeRF's lips stage) instead of scattered rays;
- `renders`: the term reads rendered pixels (a stage whose terms read none renders nothing);
- `fits`: the term trains its nodes with a loop of its own instead of per-step gradients (`sync`);
- `landmarks`: the term compares the trained nodes' `Landmarks(68, 3)` outputs with the tracked 3D
  landmarks on the train frames (`LossInputs.landmarks`).

A stage that names no losses gets `default_losses()`. This module imports torch only inside the
terms, so spec validation (`thkit.train.checks`) can use the catalogue without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

from thkit.core.ports import Landmarks
from thkit.data.layout import HEAD

if TYPE_CHECKING:
    from torch import Tensor

    from thkit.core.graph import Graph
    from thkit.core.spec import StageSpec
    from thkit.train.lpips import Lpips


@dataclass
class LossInputs:
    """What one training step offers its loss terms."""

    rgb: Tensor | None = None  # [R, 3] the final image at the sampled pixels (None when nothing is rendered)
    target: Tensor | None = None  # [R, 3] the ground truth there
    labels: Tensor | None = None  # [R] mask labels there (0 background, 1 torso, 2 head)
    patch: int | None = None  # P when the rays are square patches: P * P rays per frame, row-major
    renders: dict[str, dict[str, Tensor]] = field(default_factory=dict)  # each rendered renderer's outputs
    landmarks: list[tuple[Tensor, Tensor]] = field(default_factory=list)  # (predicted, tracked) on the train frames


@dataclass(frozen=True)
class Loss:
    name: str
    compute: Callable[[LossInputs], Tensor] | None
    doc: str
    patches: bool = False
    renders: bool = True
    fits: bool = False
    landmarks: bool = False

    @property
    def summary(self) -> str:
        return self.doc.strip().splitlines()[0]


LOSSES: dict[str, Loss] = {}


def _term(name: str, *, patches: bool = False, renders: bool = True, landmarks: bool = False) -> Callable:
    def register(compute: Callable[[LossInputs], Tensor]) -> Callable[[LossInputs], Tensor]:
        LOSSES[name] = Loss(name, compute, compute.__doc__ or "", patches=patches, renders=renders, landmarks=landmarks)
        return compute

    return register


@_term("rgb")
def rgb(inputs: LossInputs) -> Tensor:
    """Mean squared error of the final image's colours (ER-NeRF's photometric loss)."""
    return (inputs.rgb - inputs.target).pow(2).mean()


@_term("l1")
def l1(inputs: LossInputs) -> Tensor:
    """Mean absolute error of the final image's colours (TalkingGaussian's photometric loss)."""
    return (inputs.rgb - inputs.target).abs().mean()


@_term("ssim", patches=True)
def ssim(inputs: LossInputs) -> Tensor:
    """1 - SSIM of the lip patches (Gaussian window 11, sigma 1.5, as Wang et al. 2004; no weights)."""
    return 1 - structural_similarity(_patches(inputs.rgb, inputs.patch), _patches(inputs.target, inputs.patch)).mean()


@_term("lpips", patches=True)
def lpips(inputs: LossInputs) -> Tensor:
    """LPIPS-alex of the lip patches (ER-NeRF's lips stage); needs the weights in `thkit.train.lpips`."""
    network = _lpips_network(str(inputs.rgb.device))
    return network(_patches(inputs.rgb, inputs.patch), _patches(inputs.target, inputs.patch)).mean()


@_term("ambient")
def ambient(inputs: LossInputs) -> Tensor:
    """Renderers' `reg_ambient` pushed to zero on rays outside the head mask (ER-NeRF's ambient loss).

    Audio and eye attention should not move anything but the face: every renderer that returns a
    per-ray `reg_ambient` ([R] or [R, k]) has its mean absolute value on non-head rays penalised.
    """
    renderers = _with(inputs, "reg_ambient")
    outside = inputs.labels != HEAD
    if not outside.any():
        return inputs.rgb.new_zeros(())
    return sum(_per_ray(outputs["reg_ambient"], outside, name)[outside].abs().mean() for name, outputs in renderers)


@_term("entropy")
def entropy(inputs: LossInputs) -> Tensor:
    """Entropy of renderers' opacity, pushing it to 0 or 1 (ER-NeRF's alpha entropy regulariser).

    A renderer that returns `reg_entropy` has its mean taken (the renderer decides what it measures,
    e.g. per-sample weights); every other rendered renderer has the binary entropy of its alpha.
    """
    total = inputs.rgb.new_zeros(())
    for outputs in inputs.renders.values():
        if "reg_entropy" in outputs:
            total = total + outputs["reg_entropy"].mean()
        else:
            alpha = outputs["rgba"][:, 3].clamp(1e-5, 1 - 1e-5)
            total = total - (alpha * alpha.log() + (1 - alpha) * (1 - alpha).log()).mean()
    return total


@_term("landmarks", renders=False, landmarks=True)
def landmarks(inputs: LossInputs) -> Tensor:
    """Mean squared error of predicted landmarks against the tracked 3D ones, on every train frame.

    For a stage training a conditioning node with a `Landmarks(68, 3)` output (an audio-to-landmarks
    model, the decoupled paper's first stage); canonical head space, decimetres.
    """
    return sum((predicted - tracked).pow(2).mean() for predicted, tracked in inputs.landmarks)


LANDMARK_BETA = 0.01  # smooth L1's quadratic zone, in face sizes (about 1.5 mm on an adult face)


@_term("landmarks_l1", renders=False, landmarks=True)
def landmarks_l1(inputs: LossInputs) -> Tensor:
    """Smooth L1 of predicted landmarks against the tracked 3D ones, in face sizes (the decoupled paper's loss).

    Errors are divided by the face's size (the longest side of the bounding box of the tracked
    landmarks' per-point median), so the weight means the same for any subject and unit; beyond
    LANDMARK_BETA face sizes the penalty is linear, so a few badly tracked frames do not dominate.
    """
    return sum(_smooth_l1_in_face_sizes(predicted, tracked, tracked) for predicted, tracked in inputs.landmarks)


@_term("landmarks_velocity", renders=False, landmarks=True)
def landmarks_velocity(inputs: LossInputs) -> Tensor:
    """Smooth L1 of predicted frame-to-frame landmark motion against the tracked motion, in face sizes.

    Penalises jitter and lag that a per-frame position loss barely sees; same units as `landmarks_l1`.
    """
    return sum(
        _smooth_l1_in_face_sizes(predicted.diff(dim=0), tracked.diff(dim=0), tracked) for predicted, tracked in inputs.landmarks
    )


def _smooth_l1_in_face_sizes(predicted: Tensor, tracked: Tensor, face: Tensor) -> Tensor:
    import torch.nn.functional as F

    median = face.detach().median(dim=0).values  # [68, 3]
    size = (median.amax(dim=0) - median.amin(dim=0)).max().clamp_min(1e-8)
    return F.smooth_l1_loss(predicted / size, tracked / size, beta=LANDMARK_BETA)


LOSSES["sync"] = Loss(
    "sync",
    None,
    """Contrastive audio-visual sync (InfoNCE over time-shifted mouths), fitted with `fit_sync`.

    For a stage training `sync` encoders: each is fitted together with its own visual mouth encoder
    on mouth crops of the subject's training frames (see `thkit.train.mouth`). The term has its own
    optimiser, so it cannot share a stage with other terms, and its weight is not used.
    """,
    renders=False,
    fits=True,
)


def default_losses(graph: Graph, stage: StageSpec) -> dict[str, float]:
    """A stage's terms: its `losses`, else `sync` when it trains only sync encoders, `landmarks` when it
    trains only landmark predictors, and `rgb` otherwise."""
    if stage.losses:
        return dict(stage.losses)
    nodes = [graph.nodes[name] for name in stage.train if name in graph.nodes]
    if nodes and all(hasattr(node.component, "build_visual") for node in nodes):
        return {"sync": 1.0}
    if nodes and all(node.spec.kind == "conditioning" and landmark_outputs(graph, node.name) for node in nodes):
        return {"landmarks": 1.0}
    return {"rgb": 1.0}


def landmark_outputs(graph: Graph, name: str) -> list[str]:
    """Output ports of node `name` comparable with the tracked 3D landmarks."""
    return [port_name for port_name, port in graph.nodes[name].outputs.items() if port == Landmarks(68, 3, graph.context.video_fps)]


def structural_similarity(a: Tensor, b: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """SSIM per image of [batch, 3, H, W] in [0, 1], over the valid window positions (window shrinks to fit)."""
    import torch
    import torch.nn.functional as F

    size = min(window, *a.shape[-2:])
    size -= 1 - size % 2  # odd
    offsets = torch.arange(size, dtype=a.dtype, device=a.device) - size // 2
    gauss = torch.exp(-(offsets**2) / (2 * sigma**2))
    gauss = gauss / gauss.sum()
    kernel = (gauss[:, None] * gauss[None, :]).expand(a.shape[1], 1, size, size)

    def blur(x: Tensor) -> Tensor:
        return F.conv2d(x, kernel, groups=a.shape[1])

    c1, c2 = 0.01**2, 0.03**2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    score = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return score.mean((1, 2, 3))


@lru_cache(maxsize=2)
def _lpips_network(device: str) -> Lpips:
    from thkit.train.lpips import Lpips

    return Lpips(device)


def _patches(rays: Tensor, patch: int | None) -> Tensor:
    """[F * P * P, 3] rays of row-major square patches -> [F, 3, P, P] images."""
    if patch is None:
        raise ValueError("this loss needs square patches; the stage sampled scattered rays")
    return rays.reshape(-1, patch, patch, rays.shape[-1]).permute(0, 3, 1, 2)


def _with(inputs: LossInputs, key: str) -> list[tuple[str, dict[str, Tensor]]]:
    found = [(name, outputs) for name, outputs in inputs.renders.items() if key in outputs]
    if not found:
        from thkit.core.errors import ThkitError

        raise ThkitError(
            f"loss '{key.removeprefix('reg_')}' needs a renderer that returns '{key}', and none of {', '.join(inputs.renders) or '(none)'} does",
            hint=f"drop '{key.removeprefix('reg_')}' from the stage's losses, or use a renderer that supports it",
        )
    return found


def _per_ray(value: Tensor, rays: Tensor, renderer: str) -> Tensor:
    if value.shape[0] != rays.shape[0]:
        raise ValueError(f"renderer '{renderer}' returned reg_ambient with {value.shape[0]} rows for {rays.shape[0]} rays")
    return value
