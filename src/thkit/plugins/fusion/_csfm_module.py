"""The torch side of the `csfm` fusion, and the reasons behind each of its parts.

DAMC (arXiv 2503.22728) names a Cross-Synchronized Fusion Module that turns a content code (E_c,
e.g. HuBERT) and a sync code (E_d, a SyncNet-style encoder) into one audio code f_a, but publishes
no internals. These are thkit's choices, in data-flow order:

1. **Windows, per stream, at its own rate.** For video frame t, `windows_to_frames` takes
   `content_window` rows of the content stream and `sync_window` rows of the sync stream, each
   centred on the frame's centre time with exact rational alignment (ER-NeRF feeds 16 feature rows
   per video frame). Streams are never resampled onto a common rate first: that would blur the
   faster stream and duplicate rows of the slower one. Frame t therefore depends on nothing
   outside those two windows (plus the smoothing window when `smooth` > 0), so the code of a frame
   never changes with the clip's length or far-away audio.
2. **Input LayerNorm, then a linear projection to `dim` per stream.** The streams arrive with
   unrelated widths (1024 for HuBERT, 512 for sync) and scales (HuBERT hidden states reach tens;
   log-mel-trained embeddings are O(1)); normalising each row first puts them on one footing, and
   one Linear maps each to the shared width. `dim` = 64 by default, ER-NeRF's audio code width, so
   a renderer sized for ER-NeRF's code fits unchanged.
3. **Learned position embeddings per stream** ([window, dim], std 0.02). Attention is otherwise
   blind to order, and lip sync is about *when*: the sync stream must be able to point at the
   content rows at the frame's own time. The windows of the two streams have different rates, so
   each has its own table; small init keeps the projected features dominant at the start.
4. **Bidirectional cross-attention, one layer, in parallel.** Content tokens query the sync tokens
   (what is said gets re-timed by the sync evidence) and sync tokens query the content tokens (the
   sync evidence gets disambiguated by what is said). Both directions read the other stream's
   *input* tokens, so neither direction is privileged by evaluation order. `heads` = 4 (16 wide at
   dim 64) lets different heads track different lags. One layer: the module is trained per subject
   on minutes of video, and depth buys little over a window of 8 to 16 tokens.
5. **Pre-LayerNorm residual blocks with LayerScale.** Each stream: x + γ·CrossAttn(LN(x), LN(y)),
   then x + γ·FFN(LN(x)) (FFN 2·dim wide, GELU). γ is a learned per-channel scale starting at 0.1
   (CaiT's LayerScale): the untrained module is close to the identity on each stream, so the
   projected inputs pass straight through to the code, while every attention and FFN weight still
   gets gradient from the first step (a zero init would freeze the attention's inputs until γ grew).
6. **Attention pooling of each window to one vector.** Weights softmax(b_pos + x·q) over the window
   positions, with b_pos and q starting at zero, so pooling starts as the exact window mean
   (nothing is dropped) and can learn to favour the frame's centre or any lag. Taking only the
   centre token would throw the window away; a fixed mean could not focus.
7. **Sigmoid gate between the streams.** g = σ(W[c; s] + b) per channel; code = g·c + (1 − g)·s.
   The gate decides, per frame and channel, how much comes from content and how much from sync,
   which is the "coupling" DAMC argues for (e.g. trust sync features on plosives, content during
   steady vowels or for TTS audio whose timing is clean). W and b start at zero, so g = 0.5: an even
   blend, both streams reach the code, and a gate saturated at 0 or 1 (which would cut a stream's
   gradient) is avoided at the start.
8. **Output LayerNorm.** The code conditions a NeRF; a per-frame normalised code keeps the
   renderer's input scale fixed whatever the encoders emit (its affine part starts as identity).
9. **Dropout** (default 0.1) on attention weights and FFN hidden units only, never on the code
   itself: regularisation for one subject's few minutes of data without adding frame-to-frame
   jitter to what the renderer sees at inference (eval mode turns it off anyway).
10. **Optional temporal smoothing** (`smooth` frames, ER-NeRF's AudioAttNet, see `_smoothing`) on
    the code, off by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import torch
from jaxtyping import Float
from torch import Tensor, nn

from thkit.core.align import windows_to_frames
from thkit.core.timebase import Timeline
from thkit.plugins.fusion._smoothing import TemporalSmoother

LAYER_SCALE_INIT = 0.1
POSITION_INIT_STD = 0.02
FFN_EXPANSION = 2


@dataclass(frozen=True)
class StreamSpec:
    """One input stream: its width, its rate, and how many of its rows each video frame sees."""

    dim: int
    fps: Fraction
    window: int


class StreamEmbed(nn.Module):
    """Rows of one stream around each frame -> [frames, window, dim] tokens (choices 1 to 3)."""

    def __init__(self, stream: StreamSpec, video_fps: Fraction, dim: int) -> None:
        super().__init__()
        self.stream = stream
        self.video_fps = video_fps
        self.norm = nn.LayerNorm(stream.dim)
        self.project = nn.Linear(stream.dim, dim)
        self.position = nn.Parameter(torch.randn(stream.window, dim) * POSITION_INIT_STD)

    def forward(self, seq: Float[Tensor, "rows in_dim"], n_frames: int) -> Float[Tensor, "frames window dim"]:
        windows = windows_to_frames(seq, self.stream.fps, self.video_fps, n_frames, self.stream.window)
        return self.project(self.norm(windows)) + self.position


class CrossBlock(nn.Module):
    """Queries attend to another stream's tokens, then a feed-forward step; pre-LN, LayerScale residuals."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.query_norm = nn.LayerNorm(dim)
        self.key_norm = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.attention_scale = nn.Parameter(torch.full((dim,), LAYER_SCALE_INIT))
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(
            nn.Linear(dim, FFN_EXPANSION * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(FFN_EXPANSION * dim, dim)
        )
        self.ffn_scale = nn.Parameter(torch.full((dim,), LAYER_SCALE_INIT))

    def forward(
        self, queries: Float[Tensor, "frames q dim"], keys: Float[Tensor, "frames k dim"]
    ) -> Float[Tensor, "frames q dim"]:
        other = self.key_norm(keys)
        attended, _ = self.attention(self.query_norm(queries), other, other, need_weights=False)
        x = queries + self.attention_scale * attended
        return x + self.ffn_scale * self.ffn(self.ffn_norm(x))


class AttentionPool(nn.Module):
    """[frames, window, dim] -> [frames, dim], softmax(b_pos + x.q) weights; starts as the exact mean."""

    def __init__(self, dim: int, window: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.zeros(dim))
        self.position_bias = nn.Parameter(torch.zeros(window))

    def forward(self, tokens: Float[Tensor, "frames window dim"]) -> Float[Tensor, "frames dim"]:
        weights = torch.softmax(tokens @ self.query + self.position_bias, dim=1)  # [frames, window]
        return torch.einsum("fw,fwd->fd", weights, tokens)


class CsfmModule(nn.Module):
    def __init__(
        self,
        content: StreamSpec,
        sync: StreamSpec,
        video_fps: Fraction,
        *,
        dim: int,
        heads: int,
        dropout: float,
        smooth: int,
    ) -> None:
        super().__init__()
        self.video_fps = video_fps
        self.dim = dim
        self.content = StreamEmbed(content, video_fps, dim)
        self.sync = StreamEmbed(sync, video_fps, dim)
        self.content_from_sync = CrossBlock(dim, heads, dropout)
        self.sync_from_content = CrossBlock(dim, heads, dropout)
        self.content_pool = AttentionPool(dim, content.window)
        self.sync_pool = AttentionPool(dim, sync.window)
        self.gate = nn.Linear(2 * dim, dim)
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)
        self.out_norm = nn.LayerNorm(dim)
        self.smoother = TemporalSmoother(dim, smooth) if smooth else None

    def gate_values(self, inputs: dict[str, Tensor], timeline: Timeline) -> Float[Tensor, "frames dim"]:
        """The per-frame, per-channel share of the content stream in the code (0.5 untrained)."""
        return self._fuse(inputs, timeline)[1]

    def forward(self, inputs: dict[str, Tensor], timeline: Timeline) -> dict[str, Tensor]:
        code = self._fuse(inputs, timeline)[0]
        return {"code": code if self.smoother is None else self.smoother(code)}

    def _fuse(self, inputs: dict[str, Tensor], timeline: Timeline) -> tuple[Tensor, Tensor]:
        n_frames = timeline.frames(self.video_fps)
        content_rows, sync_rows = inputs["content"], inputs["sync"]
        if n_frames == 0:
            empty = content_rows.new_zeros(0, self.dim)
            return empty, empty
        content = self.content(content_rows, n_frames)  # [frames, content_window, dim]
        sync = self.sync(sync_rows, n_frames)  # [frames, sync_window, dim]
        content, sync = self.content_from_sync(content, sync), self.sync_from_content(sync, content)
        pooled_content, pooled_sync = self.content_pool(content), self.sync_pool(sync)
        gate = torch.sigmoid(self.gate(torch.cat([pooled_content, pooled_sync], dim=1)))
        fused = gate * pooled_content + (1 - gate) * pooled_sync
        return self.out_norm(fused), gate
