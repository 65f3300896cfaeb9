"""The torch side of `landmark-transformer`, and the reasons behind each of its parts.

The decoupled Gaussian-landmark NeRF's stage 1 (Ma, Cao, Zhang 2025; its public code, see
research/papers.md section 2) maps wav2vec2 features plus formants to offsets of 37 landmarks from
a neutral face with a 2-layer, 64-wide, 4-head Transformer decoder. thkit keeps its sizes and its
outputs and changes what streaming and per-subject training need. In data-flow order:

1. **Frame-aligned audio.** Each stream (speech features at their own rate, formants at 100 Hz)
   is averaged over the rows overlapping each video frame's span (`pool_to_frames`, exact rational
   time). A frame reads only the audio under it, so which frames see which audio is fixed by the
   attention mask alone (choice 4). The paper likewise brings its features to 25 fps first.
2. **Per-channel normalisation with running statistics (BatchNorm over frames), one projection.**
   Speech features arrive at any width and scale (HuBERT hidden states reach tens) and formant
   channels mean different things (Hz, a voicing mask, a level), so each channel is standardised:
   by the clip's statistics while training (the whole training clip is one batch), by their running
   averages in eval mode, which keeps inference causal and the same on a stream. A per-frame
   LayerNorm, as `csfm` uses, was tried and dropped: it removes each frame's overall level, which
   for narrow features such as mel bands is the loudness, the strongest cue of how far the mouth
   opens (on a toy audio-to-mouth map it held the held-out correlation at 0.83; this gets 0.99).
   The two streams are then concatenated and one Linear maps them to `dim`, as the paper's
   Linear(768 + 6 -> 64) does.
3. **Frame-aligned (diagonal) injection in every layer.** The paper replaces its decoder's
   cross-attention by attention that may only look at the same frame's audio; such an attention
   reduces to a linear map of that frame's audio embedding, which each layer adds to its residual
   stream. The audio therefore reaches every layer directly, not only through the first.
4. **Windowed self-attention with a learned relative position bias.** Frame t attends to frames
   t - window + 1 .. t (`causal`) or t - window // 2 .. t + (window - 1) // 2, per layer. There
   are no absolute positions: a bias per head and relative offset (zero at the start, so attention
   starts uniform over the window) replaces the paper's ALiBi slopes, so a frame's landmarks
   depend on nearby audio only, never on where the clip started: the model runs the same on a
   stream as on a whole clip. Causal, a frame never waits for later audio (zero lookahead); centred,
   the lookahead is layers * ((window - 1) // 2) frames (0.56 s at the defaults and 25 fps), which
   lets the lips anticipate a sound as speakers do. Attention is computed in blocks of
   `QUERY_BLOCK` frames against only the keys they may see, so memory grows linearly with the clip.
5. **Not autoregressive.** The paper's decoder feeds its own past landmarks back (teacher forcing in
   training, frame-by-frame generation at inference). Here the landmarks are a function of the audio
   alone: no exposure bias, the whole clip trains and runs in parallel, and smoothness comes from
   attention over neighbouring frames and the velocity loss (`landmarks_velocity` in
   `thkit.train.losses`).
6. **Pre-LayerNorm residual layers**: self-attention, injection, then a 4 * dim GELU feed-forward
   (the paper's is 512 wide at 64), with dropout on attention weights and residual branches:
   regularisation for minutes of one subject's video; eval mode turns it off.
7. **Output: LayerNorm, then a zero-initialised Linear to 37 x 3 offsets.** The untrained model
   outputs exactly the neutral face (a valid face, not noise); the head gets gradient from the first
   step and everything before it from the second.
8. **Offsets in units of the neutral face's bounding box**, per axis, as the paper normalises to
   [-0.5, 0.5]: the network's outputs are O(0.1) whatever the landmarks' unit (decimetres in head
   space, or pixels). An axis shorter than `MIN_AXIS_FRACTION` of the longest (a nearly flat face)
   uses that length, so every axis stays trainable.
9. **The neutral face** is a buffer, saved with the weights: the per-point median of the subject's
   tracked landmarks over the training frames, set by `init_from_subject`, which the trainer calls
   once after building. A median, not a mean: wide mouth openings and blinks (a few percent of
   frames) do not drag it, so its eyes are open at the clip's median lid gap, which is exactly what
   blink 0 means in the data (`thkit.data.preprocess.signals`), and its mouth is the subject's
   typical one. Before it is set the neutral face is all zeros.
10. **Blink** moves the eyelid points by `thkit.render.edits.close_eyes`, geometry rather than a
    learned map: closure b shrinks each lid pair's gap by (1 - b), the data's own definition of
    blink, so the output blinks exactly as the input says.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from thkit.core.align import pool_to_frames
from thkit.core.timebase import Timeline
from thkit.render.edits import SPEECH_POINTS, close_eyes

if TYPE_CHECKING:
    from thkit.train.subject import Subject

QUERY_BLOCK = 256  # frames of queries per attention block (choice 4)
FFN_EXPANSION = 4
MIN_AXIS_FRACTION = 0.1  # choice 8


@dataclass(frozen=True)
class Stream:
    """One input sequence: its width and rate."""

    dim: int
    fps: Fraction


def attention_offsets(window: int, causal: bool) -> tuple[int, int]:
    """The first and last key offset (key frame - query frame) a frame attends to."""
    if causal:
        return -(window - 1), 0
    return -(window // 2), (window - 1) // 2


class WindowedSelfAttention(nn.Module):
    """Multi-head self-attention over frames within a window (choice 4), with a relative position bias."""

    def __init__(self, dim: int, heads: int, window: int, causal: bool, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.first, self.last = attention_offsets(window, causal)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.position_bias = nn.Parameter(torch.zeros(heads, self.last - self.first + 1))

    def forward(self, x: Float[Tensor, "frames dim"]) -> Float[Tensor, "frames dim"]:
        frames, dim = x.shape
        q, k, v = self.qkv(x).reshape(frames, 3, self.heads, dim // self.heads).permute(1, 2, 0, 3)  # each [heads, frames, head_dim]
        dropout = self.dropout if self.training else 0.0
        blocks = []
        for start in range(0, frames, QUERY_BLOCK):
            stop = min(start + QUERY_BLOCK, frames)
            key_start, key_stop = max(start + self.first, 0), min(stop + self.last, frames)
            offset = torch.arange(key_start, key_stop, device=x.device)[None, :] - torch.arange(start, stop, device=x.device)[:, None]
            inside = (offset >= self.first) & (offset <= self.last)
            bias = self.position_bias[:, (offset - self.first).clamp(0, self.last - self.first)]  # [heads, queries, keys]
            mask = bias.masked_fill(~inside, float("-inf"))
            blocks.append(
                F.scaled_dot_product_attention(q[:, start:stop], k[:, key_start:key_stop], v[:, key_start:key_stop], attn_mask=mask, dropout_p=dropout)
            )
        return self.out(torch.cat(blocks, dim=1).transpose(0, 1).reshape(frames, dim))


class Layer(nn.Module):
    """Pre-LN: windowed self-attention, the frame's own audio injected, feed-forward (choices 3 and 6)."""

    def __init__(self, dim: int, heads: int, window: int, causal: bool, dropout: float) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(dim)
        self.attention = WindowedSelfAttention(dim, heads, window, causal, dropout)
        self.inject = nn.Linear(dim, dim)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, FFN_EXPANSION * dim), nn.GELU(), nn.Linear(FFN_EXPANSION * dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Float[Tensor, "frames dim"], audio: Float[Tensor, "frames dim"]) -> Float[Tensor, "frames dim"]:
        x = x + self.drop(self.attention(self.attention_norm(x)))
        x = x + self.drop(self.inject(audio))
        return x + self.drop(self.ffn(self.ffn_norm(x)))


class LandmarkTransformerModule(nn.Module):
    neutral: Tensor

    def __init__(
        self,
        audio: Stream,
        formant: Stream,
        video_fps: Fraction,
        *,
        use_blink: bool,
        dim: int,
        layers: int,
        heads: int,
        dropout: float,
        window: int,
        causal: bool,
    ) -> None:
        super().__init__()
        self.audio, self.formant, self.video_fps = audio, formant, video_fps
        self.use_blink = use_blink
        self.input_norm = nn.BatchNorm1d(audio.dim + formant.dim)
        self.embed = nn.Linear(audio.dim + formant.dim, dim)
        self.layers = nn.ModuleList(Layer(dim, heads, window, causal, dropout) for _ in range(layers))
        self.out_norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 3 * len(SPEECH_POINTS))
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.register_buffer("neutral", torch.zeros(68, 3))
        self.register_buffer("points", torch.tensor(SPEECH_POINTS), persistent=False)

    def init_from_subject(self, subject: Subject) -> None:
        """Set the neutral face from the subject's tracked landmarks on its training frames (choice 9)."""
        train = subject.train_frames
        self.fit_neutral(subject.array("landmarks3d")[train.start : train.stop])

    @torch.no_grad()
    def fit_neutral(self, tracked: Float[Tensor, "frames 68 3"]) -> None:
        """The neutral face := the per-point median of `tracked` over its frames."""
        if tracked.ndim != 3 or tuple(tracked.shape[1:]) != (68, 3) or tracked.shape[0] == 0:
            raise ValueError(f"tracked landmarks must be [frames > 0, 68, 3], got {list(tracked.shape)}")
        self.neutral.copy_(tracked.to(self.neutral).median(dim=0).values)

    def axis_scale(self) -> Float[Tensor, "3"]:
        """Per-axis size of the neutral face's bounding box: the unit of the predicted offsets (choice 8)."""
        extent = self.neutral.amax(dim=0) - self.neutral.amin(dim=0)
        return torch.maximum(extent, MIN_AXIS_FRACTION * extent.max())

    def forward(self, inputs: dict[str, Tensor], timeline: Timeline) -> dict[str, Tensor]:
        frames = timeline.frames(self.video_fps)
        landmarks = self.neutral.expand(frames, 68, 3).clone()
        if frames == 0:
            return {"landmarks": landmarks}
        speech = pool_to_frames(inputs["audio"], self.audio.fps, self.video_fps, frames)
        formant = pool_to_frames(inputs["formant"], self.formant.fps, self.video_fps, frames)
        audio = self.embed(self.input_norm(torch.cat([speech, formant], dim=1)))
        x = audio
        for layer in self.layers:
            x = layer(x, audio)
        offsets = self.head(self.out_norm(x)).reshape(frames, len(SPEECH_POINTS), 3) * self.axis_scale()
        landmarks[:, self.points] = landmarks[:, self.points] + offsets
        if self.use_blink:
            blink = pool_to_frames(inputs["blink"], self.video_fps, self.video_fps, frames)[:, 0]
            landmarks = close_eyes(landmarks, blink.clamp(0, 1))
        return {"landmarks": landmarks}
