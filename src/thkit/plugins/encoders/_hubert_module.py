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

from thkit.audio.cache import state_digest
from thkit.core import ThkitError, Timeline
from thkit.plugins.encoders.hubert import FPS, SAMPLE_RATE, HubertParams

NORMALIZE_EPS = 1e-7  # as Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm
FRONT_END_BLOCK = 250  # frames (5 s) per convolution block: base models' first layer is 512 x 16000 floats
STATS_BLOCK = 1 << 16  # windows per float64 block of the group-norm statistics (5 MB)
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
        self._weights_digest: str | None = None
        if not self.trainable:
            self.backbone.requires_grad_(False)
            self.backbone.eval()
        self.backbone.to(backbone_dtype(params))
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
        state = self.state_dict()
        if self.trainable:
            return state_digest(state)
        if self._frozen_digest is None:
            self._frozen_digest = state_digest({k: v for k, v in state.items() if k.startswith("backbone.")})
        own = state_digest({k: v for k, v in state.items() if not k.startswith("backbone.")})
        return f"{self._frozen_digest}+{own}"

    def external_weights(self) -> dict[str, str]:
        """A frozen backbone comes from `weights` at every build, so a run's checkpoints leave it out.

        Its digest is of the weights rounded to bfloat16, which is what this machine runs them in or
        not: a run trained where `precision: auto` picks bfloat16 loads where it picks float32.
        """
        if self.trainable:
            return {}
        if self._weights_digest is None:
            state = self.backbone.state_dict()
            self._weights_digest = state_digest({k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in state.items()})
        return {"backbone.": self._weights_digest}

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
            padded = self._pad(self._normalized(audio), n_out)
            first_conv = self._first_conv(padded)
            padded = padded.to(self.backbone.dtype)
        pieces = []
        front, front_lo = None, 0  # convolutional features of frames from front_lo on, kept for the next pass
        for start in range(0, n_out, self.chunk):
            stop = min(n_out, start + self.chunk)
            lo, hi = max(0, start - self.overlap), min(n_out, stop + self.overlap)
            with torch.set_grad_enabled(grad_backbone):
                # Passes overlap: the frames two passes share go through the convolutions once.
                done = 0 if front is None else front_lo + front.shape[1]
                parts = [] if front is None else [front[:, lo - front_lo :]]
                if hi > done:
                    parts.append(self._front_end(padded, done, hi, first_conv))
                front, front_lo = torch.cat(parts, dim=1), lo
                states = self._states(front)
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

    def _first_conv(self, padded: Float[Tensor, "padded"]) -> tuple[Tensor, Tensor] | None:
        """The first convolution's weight and bias with a group norm over the whole clip folded in.

        A group-norm front end normalises each channel of the first convolution over the whole
        clip. That convolution is linear in windows of `kernel` samples, so a channel's mean and
        variance over the clip follow exactly from the windows' mean and covariance (a few sums
        over the audio in float64): no convolution pass over the clip is needed, and the gradient
        reaches the convolution's weights through the statistics too, as through nn.GroupNorm (the
        audio's sums are constants). The normalisation is then a per-channel scale and shift,
        folded into the convolution. None for layer-norm front ends, which normalise each frame on
        its own.
        """
        if not self.group_norm:
            return None
        layer = self.backbone.feature_extractor.conv_layers[0]
        conv, norm = layer.conv, layer.layer_norm  # GroupNorm with one group per channel
        kernel, step = conv.kernel_size[0], conv.stride[0]
        with torch.no_grad():
            windows = padded.detach().unfold(0, kernel, step)  # a view: [positions, kernel]
            total, outer = windows.new_zeros(kernel, dtype=torch.float64), windows.new_zeros(kernel, kernel, dtype=torch.float64)
            for first in range(0, windows.shape[0], STATS_BLOCK):
                block = windows[first : first + STATS_BLOCK].double()
                total += block.sum(0)
                outer += block.T @ block
            mean = total / windows.shape[0]
            covariance = outer / windows.shape[0] - torch.outer(mean, mean)
        weight = conv.weight[:, 0].double()  # [channels, kernel]; a bias would cancel in the normalisation
        channel_mean = weight @ mean
        channel_var = ((weight @ covariance) * weight).sum(1).clamp_min(0)
        scale = norm.weight.double() * torch.rsqrt(channel_var + norm.eps)
        shift = norm.bias.double() - channel_mean * scale
        dtype = self.backbone.dtype
        return (conv.weight.double() * scale[:, None, None]).to(dtype), shift.to(dtype)

    def _front_end(self, padded: Float[Tensor, "padded"], lo: int, hi: int, first_conv) -> Float[Tensor, "1 frames channels"]:
        """Convolutional features of frames [lo, hi), computed in blocks to bound the stack's memory."""
        blocks = []
        for first in range(lo, hi, FRONT_END_BLOCK):
            last = min(hi, first + FRONT_END_BLOCK)
            hidden = padded[first * self.stride : (last - 1) * self.stride + self.field][None, None]
            for index, conv_layer in enumerate(self.backbone.feature_extractor.conv_layers):
                if index == 0 and first_conv is not None:
                    weight, bias = first_conv
                    hidden = conv_layer.activation(F.conv1d(hidden, weight, bias, stride=conv_layer.conv.stride))
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


def backbone_dtype(params: HubertParams) -> torch.dtype:
    """The backbone's arithmetic: `precision: auto` is bfloat16 for a frozen backbone on a CPU with
    native bfloat16 (AVX512-BF16 or AMX), where it is about 1.7x faster than float32."""
    if params.precision == "auto":
        return torch.bfloat16 if not params.trainable and native_bfloat16() else torch.float32
    return getattr(torch, params.precision)


def native_bfloat16() -> bool:
    return torch.ops.mkldnn._is_mkldnn_bf16_supported()


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
