"""The torch side of the `hubert` encoder: loading, the chunked forward pass and layer selection.

The model is run step by step here (the steps themselves are transformers' own modules) so that
a pass can stop at the requested layer, take a banded attention mask for a bounded context, and
normalise a group-norm front end with statistics of the whole clip. The module docstring of
`thkit.plugins.encoders.hubert` says why each matters. Training-time SpecAugment masking and
layer drop, which `HubertModel.forward` would apply, are never applied: a talking head needs
features of every frame.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from thkit.core import ThkitError, Timeline
from thkit.plugins.encoders.hubert import FPS, SAMPLE_RATE, HubertParams

NORMALIZE_EPS = 1e-7  # as Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm
FRONT_END_BLOCK = 250  # frames (5 s) per convolution block: base models' first layer is 512 x 16000 floats
HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")


class HubertModule(nn.Module):
    def __init__(self, component) -> None:
        super().__init__()
        params: HubertParams = component.params
        self.hidden = component.hidden_size()
        self.backbone = load_backbone(params.family, params.weights)
        config = self.backbone.config
        self._check(config, params)

        self.num_states = config.num_hidden_layers + 1
        if params.layer == "weighted":
            self.layer_logits = nn.Parameter(torch.zeros(self.num_states))
            self.layer = None
        else:
            if not -self.num_states <= params.layer < self.num_states:
                raise ThkitError(f"layer: {params.layer} is out of range: {params.weights} has hidden states 0..{self.num_states - 1}")
            self.layer = params.layer % self.num_states
        self.trainable = params.trainable
        self._frozen_digest: str | None = None
        if not self.trainable:
            self.backbone.requires_grad_(False)
            self.backbone.eval()
        self.backbone.to(getattr(torch, params.precision))
        self.normalize = wants_normalize(params.weights) if params.normalize is None else params.normalize

        self.stride = math.prod(config.conv_stride)
        self.field = receptive_field(config.conv_kernel, config.conv_stride)
        self.group_norm = config.feat_extract_norm == "group"
        self.chunk = max(1, round(params.chunk_seconds * FPS))
        self.overlap = round(params.overlap_seconds * FPS)
        self.context = None if params.context_seconds is None else max(1, round(params.context_seconds * FPS))
        if self.context is not None:
            # What a frame can see: the positional convolution's reach plus `context` per layer used.
            kernel = config.num_conv_pos_embeddings
            layers_used = config.num_hidden_layers if self.layer is None else self.layer
            self.overlap = max(self.overlap, kernel // 2 + layers_used * self.context)

    def cache_identity(self) -> str:
        """The feature cache's key for these weights: a frozen backbone is hashed once, not per lookup."""
        from thkit.audio.cache import state_digest

        state = self.state_dict()
        if self.trainable:
            return state_digest(state)
        if self._frozen_digest is None:
            self._frozen_digest = state_digest({k: v for k, v in state.items() if k.startswith("backbone.")})
        own = state_digest({k: v for k, v in state.items() if not k.startswith("backbone.")})
        return f"{self._frozen_digest}+{own}"

    def _check(self, config, params: HubertParams) -> None:
        if config.hidden_size != self.hidden:
            raise ThkitError(
                f"{params.weights} has hidden size {config.hidden_size}, but the spec declared {self.hidden}",
                hint=f"set hidden: {config.hidden_size} (or leave it out)",
            )
        if math.prod(config.conv_stride) != SAMPLE_RATE // FPS:
            raise ThkitError(f"{params.weights}: its front end steps {math.prod(config.conv_stride)} samples, not {SAMPLE_RATE // FPS} (50 frames per second at 16 kHz)")
        if getattr(config, "add_adapter", False):
            raise ThkitError(f"{params.weights} has an output adapter that changes the frame rate; use a checkpoint without one")

    def train(self, mode: bool = True) -> HubertModule:
        super().train(mode)
        if not self.trainable:
            self.backbone.eval()  # a frozen backbone never drops out or masks
        return self

    def forward(self, inputs: dict[str, Tensor], timeline: Timeline) -> dict[str, Tensor]:
        audio = inputs["audio"]
        n_out = timeline.frames(FPS)
        if n_out == 0:
            return {"features": audio.new_zeros(0, self.hidden)}
        grad_backbone = torch.is_grad_enabled() and self.trainable
        with torch.set_grad_enabled(grad_backbone):
            padded = self._pad(self._normalized(audio), n_out).to(self.backbone.dtype)
            norm_stats = self._group_norm_stats(padded) if self.group_norm else None
        pieces = []
        for start in range(0, n_out, self.chunk):
            stop = min(n_out, start + self.chunk)
            lo, hi = max(0, start - self.overlap), min(n_out, stop + self.overlap)
            with torch.set_grad_enabled(grad_backbone):
                states = self._states(self._front_end(padded, lo, hi, norm_stats))
            pieces.append(self._combine(states)[start - lo : stop - lo])
        return {"features": torch.cat(pieces)}

    def _combine(self, states: list[Tensor]) -> Float[Tensor, "frames hidden"]:
        if self.layer is not None:
            return states[0].float()
        weights = torch.softmax(self.layer_logits, dim=0)
        return torch.einsum("l,lfd->fd", weights, torch.stack(states).float())

    def _normalized(self, audio: Float[Tensor, "samples"]) -> Float[Tensor, "samples"]:
        if not self.normalize or audio.numel() == 0:
            return audio
        return (audio - audio.mean()) / torch.sqrt(audio.var(unbiased=False) + NORMALIZE_EPS)

    def _pad(self, audio: Float[Tensor, "samples"], n_out: int) -> Float[Tensor, "padded"]:
        """Centre frame i's receptive field on row i, and hold exactly n_out frames."""
        left = (self.field - self.stride) // 2
        total = (n_out - 1) * self.stride + self.field
        return F.pad(audio, (left, max(0, total - left - audio.shape[0])))[:total]

    def _group_norm_stats(self, padded: Float[Tensor, "padded"]) -> tuple[Tensor, Tensor]:
        """Per-channel mean and variance of the first convolution's output over the whole clip.

        They are constants for the gradient (as a frozen front end needs no gradient anyway).
        """
        conv = self.backbone.feature_extractor.conv_layers[0].conv
        kernel, step = conv.kernel_size[0], conv.stride[0]
        n_pos = (padded.shape[0] - kernel) // step + 1
        block = FRONT_END_BLOCK * self.stride // step
        counts, means, sums_sq = [], [], []  # per block; combined exactly (Chan et al.) in float64
        with torch.no_grad():
            for first in range(0, n_pos, block):
                last = min(n_pos, first + block)
                out = conv(padded[first * step : (last - 1) * step + kernel][None, None])[0]
                var, mean = torch.var_mean(out, dim=1, correction=0)
                counts.append(last - first)
                means.append(mean.double())
                sums_sq.append(var.double() * (last - first))
        count = torch.tensor(counts, dtype=torch.float64, device=padded.device)[:, None]
        block_means = torch.stack(means)
        mean = (count * block_means).sum(0) / n_pos
        var = (torch.stack(sums_sq) + count * (block_means - mean).square()).sum(0) / n_pos
        return mean.to(padded.dtype), var.to(padded.dtype)

    def _front_end(self, padded: Float[Tensor, "padded"], lo: int, hi: int, norm_stats) -> Float[Tensor, "1 frames channels"]:
        """Convolutional features of frames [lo, hi), computed in blocks to bound the stack's memory."""
        blocks = []
        for first in range(lo, hi, FRONT_END_BLOCK):
            last = min(hi, first + FRONT_END_BLOCK)
            hidden = padded[first * self.stride : (last - 1) * self.stride + self.field][None, None]
            for index, conv_layer in enumerate(self.backbone.feature_extractor.conv_layers):
                if index == 0 and norm_stats is not None:
                    mean, var = norm_stats
                    norm = conv_layer.layer_norm  # GroupNorm with one group per channel
                    scale = norm.weight * torch.rsqrt(var + norm.eps)
                    shift = norm.bias - mean * scale
                    hidden = conv_layer.activation(torch.addcmul(shift[:, None], conv_layer.conv(hidden), scale[:, None]))
                else:
                    hidden = conv_layer(hidden)
            blocks.append(hidden)
        return torch.cat(blocks, dim=2).transpose(1, 2)

    def _states(self, features: Float[Tensor, "1 frames channels"]) -> list[Float[Tensor, "frames hidden"]]:
        """The requested hidden states (one, or all for 'weighted') of one pass."""
        backbone = self.backbone
        encoder = backbone.encoder
        stable = backbone.config.do_stable_layer_norm
        hidden = backbone.feature_projection(features)
        if isinstance(hidden, tuple):  # wav2vec2 also returns the normalised input
            hidden = hidden[0]
        hidden = hidden + encoder.pos_conv_embed(hidden)
        if not stable:
            hidden = encoder.layer_norm(hidden)
        hidden = encoder.dropout(hidden)
        mask = self._band_mask(hidden.shape[1], hidden)
        last = self.num_states - 1 if self.layer is None else self.layer
        states = [hidden]
        for layer in encoder.layers[:last]:
            hidden = layer(hidden, attention_mask=mask)
            if self.layer is None:
                states.append(hidden)
            else:
                states = [hidden]  # only the requested state is kept
        if stable and last == self.num_states - 1:
            states[-1] = encoder.layer_norm(hidden)
        return [state[0] for state in states]

    def _band_mask(self, frames: int, like: Tensor) -> Tensor | None:
        """Additive attention mask letting each frame see only frames within `context`."""
        if self.context is None:
            return None
        index = torch.arange(frames, device=like.device)
        far = (index[:, None] - index[None, :]).abs() > self.context
        mask = torch.zeros(frames, frames, dtype=like.dtype, device=like.device)
        return mask.masked_fill(far, torch.finfo(like.dtype).min)[None, None]


def receptive_field(kernels, strides) -> int:
    """Samples seen by one output frame of a stack of strided convolutions (400 for HuBERT)."""
    field = 1
    for kernel, stride in zip(reversed(kernels), reversed(strides), strict=True):
        field = (field - 1) * stride + kernel
    return field


def load_backbone(family: str, weights: str) -> nn.Module:
    """`from_pretrained(weights)`, or a ThkitError saying how to get the weights onto this machine."""
    from transformers import AutoConfig, HubertModel, Wav2Vec2Model

    model_class = {"hubert": HubertModel, "wav2vec2": Wav2Vec2Model}[family]
    folder = Path(weights).expanduser()
    name = weights.rstrip("/").rsplit("/", 1)[-1]
    if not folder.is_dir() and not HUB_ID.match(weights):
        raise ThkitError(
            f"weights folder '{weights}' does not exist",
            hint=f"put a transformers checkpoint there, e.g. `hf download facebook/hubert-large-ls960-ft --local-dir {weights}` on a machine with internet",
        )
    source = str(folder) if folder.is_dir() else weights
    try:
        config = AutoConfig.from_pretrained(source)
        if config.model_type != family:
            raise ThkitError(f"family: {family}, but {weights} holds a {config.model_type} model", hint=f"set family: {config.model_type}")
        return model_class.from_pretrained(source)
    except (OSError, ValueError) as error:
        if folder.is_dir():
            raise ThkitError(f"cannot load {family} weights from folder '{weights}': {error}") from None
        raise ThkitError(
            f"cannot load {family} weights '{weights}': there is no such local folder, and as a hub id it is "
            "neither in the hub cache nor downloadable (the hub is unreachable)",
            hint=f"on a machine with internet run `hf download {weights} --local-dir weights/{name}` "
            f"(older huggingface_hub: `huggingface-cli download ...`), copy weights/{name} here and set `weights: weights/{name}`",
        ) from None


def wants_normalize(weights: str) -> bool:
    """The checkpoint's own input normalisation (Wav2Vec2FeatureExtractor's do_normalize)."""
    from transformers import Wav2Vec2FeatureExtractor

    folder = Path(weights).expanduser()
    try:
        extractor = Wav2Vec2FeatureExtractor.from_pretrained(str(folder) if folder.is_dir() else weights)
    except OSError:
        return Wav2Vec2FeatureExtractor().do_normalize
    return bool(extractor.do_normalize)
