"""`landmark-transformer`: speech features plus formants -> 68 3D facial landmarks per video frame.

Stage 1 of the decoupled Gaussian-landmark NeRF (Ma, Cao, Zhang 2025): a small Transformer reads
frame-aligned audio features and formants and predicts where the jaw and mouth points (0-16 and
48-67, 37 of the 68) sit relative to the subject's neutral face; every other point is the neutral
shape's, and the eyelids close with `blink` when it is connected. The neutral shape is the
per-point median of the subject's tracked landmarks over the training frames, filled in by the
trainer (`init_from_subject`) and saved with the weights. The design and the reasons for each
choice are in `thkit.plugins.conditioning._landmark_transformer_module`.

Train it in a stage of its own on the tracked landmarks, e.g.
`{name: a2l, train: [a2l], steps: 3000, losses: {landmarks_l1: 1.0, landmarks_velocity: 1.0}}`,
and feed the renderer the tracked landmarks while it trains (`feed: {a2l.landmarks: $landmarks}`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, model_validator

from thkit.core import Accepts, Component, Landmarks, Params, Seq

if TYPE_CHECKING:
    from torch import nn


class LandmarkTransformerParams(Params):
    dim: int = Field(64, ge=1, description="width of the Transformer (the paper's decoder is 64 wide)")
    layers: int = Field(2, ge=1, description="Transformer layers (the paper uses 2)")
    heads: int = Field(4, ge=1, description="attention heads; must divide dim")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on attention weights and residual branches (training only)")
    window: int = Field(
        16, ge=1, description="video frames each frame attends to per layer: the past `window` (causal) or `window` centred on it"
    )
    causal: bool = Field(
        False,
        description="attend to past frames only, so a frame's landmarks never wait for later audio (streaming); "
        "otherwise each layer looks (window - 1) // 2 frames ahead",
    )

    @model_validator(mode="after")
    def _heads_divide_dim(self) -> LandmarkTransformerParams:
        if self.dim % self.heads:
            raise ValueError(f"heads={self.heads} must divide dim={self.dim}")
        return self


class LandmarkTransformer(Component):
    """Audio features + formants -> Landmarks(68, 3, video fps): a windowed Transformer predicting jaw and mouth offsets."""

    kind = "conditioning"
    Params = LandmarkTransformerParams
    inputs = {
        "audio": Accepts(Seq, doc="speech features (e.g. hubert or wav2vec2), any width and rate"),
        "formant": Accepts(Seq, dim=8, doc="the formant encoder's features, any rate"),
        "blink": Accepts(Seq, dim=1, fps="video", required=False, doc="eye closure per frame, 0 open .. 1 closed: moves the eyelid points"),
    }

    def outputs(self) -> dict[str, Landmarks]:
        return {"landmarks": Landmarks(68, 3, self.context.video_fps)}

    def build(self) -> nn.Module:
        from thkit.plugins.conditioning._landmark_transformer_module import LandmarkTransformerModule, Stream

        audio, formant = self.input_ports["audio"], self.input_ports["formant"]
        p = self.params
        return LandmarkTransformerModule(
            Stream(audio.dim, audio.fps),
            Stream(formant.dim, formant.fps),
            self.context.video_fps,
            use_blink="blink" in self.input_ports,
            dim=p.dim,
            layers=p.layers,
            heads=p.heads,
            dropout=p.dropout,
            window=p.window,
            causal=p.causal,
        )
