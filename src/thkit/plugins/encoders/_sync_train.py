"""Training and measuring the `sync` encoder: contrastive loss, offset scan, and `fit_sync`.

The loss is InfoNCE (as in CLIP or SyncNet's successors) over cosine similarities. For each anchor
frame t, the audio embedding at t must pick the visual embedding at t out of every visual
embedding in the batch:

- those at t +- 1 .. t +- `shifts` of the same clip: hard negatives, because the encoders must
  learn *timing*, not only which mouth shapes go with which sounds;
- those of the other frames in the batch (other times, other clips).

A batch is a few segments of consecutive frames, each with `shifts` extra frames of margin on both
sides, so every anchor's shifted negatives are embeddings the batch computes anyway: each crop
stack is encoded once per step rather than once per (anchor, shift) pair.

Offsets follow one sign convention throughout: offset s > 0 means the video lags the audio by s
frames (the mouth shows at frame t + s what the audio says at frame t).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from thkit.core.timebase import frame_count
from thkit.plugins.encoders._sync_module import MouthEncoder, SyncAudioModule


def sync_loss(
    audio: Float[Tensor, "anchors dim"],
    visual: Float[Tensor, "candidates dim"],
    target: Int[Tensor, "anchors"],
    temperature: float,
) -> Float[Tensor, ""]:
    """InfoNCE: audio[i]'s positive is visual[target[i]]; every other visual row is a negative."""
    logits = F.normalize(audio, dim=-1) @ F.normalize(visual, dim=-1).T / temperature
    return F.cross_entropy(logits, target)


def best_offset(
    audio_emb: Float[Tensor, "frames dim"], visual_emb: Float[Tensor, "frames dim"], max_shift: int
) -> tuple[int, Float[Tensor, "offsets"]]:
    """The offset in [-max_shift, max_shift] maximising the mean cosine of audio[t] and visual[t + offset].

    Returns (offset, scores), scores[i] being the mean cosine at offset i - max_shift. Every offset
    is scored on the same anchor frames t in [max_shift, frames - max_shift), so the scores are
    comparable.
    """
    frames = audio_emb.shape[0]
    if visual_emb.shape[0] != frames:
        raise ValueError(f"audio has {frames} frames, video {visual_emb.shape[0]}")
    if frames <= 2 * max_shift:
        raise ValueError(f"{frames} frames are too few to scan offsets up to +-{max_shift}")
    a = F.normalize(audio_emb, dim=-1)[max_shift : frames - max_shift]
    v = F.normalize(visual_emb, dim=-1)
    scores = torch.stack(
        [(a * v[max_shift + s : frames - max_shift + s]).sum(-1).mean() for s in range(-max_shift, max_shift + 1)]
    )
    return int(scores.argmax()) - max_shift, scores


def fit_sync(
    audio_module: SyncAudioModule,
    visual_module: MouthEncoder,
    mel_or_audio: Tensor | Sequence[Tensor],
    mouth_frames: Tensor | Sequence[Tensor],
    steps: int,
    *,
    temperature: float = 0.07,
    shifts: int = 3,
    segments: int = 4,
    segment: int = 16,
    lr: float = 1e-3,
    seed: int = 0,
) -> list[float]:
    """Train both encoders for `steps` Adam steps on one clip or several; returns the loss per step.

    `mel_or_audio` is, per clip, either mono audio [samples] at `audio_module.sample_rate` or its
    log-mel [mel_frames, n_mels] from `audio_module.log_mel`; `mouth_frames` is, per clip, the
    grayscale mouth crops [frames, height, width] in [0, 1] at the video rate, frame 0 starting with
    the audio. Each step draws `segments` runs of `segment` consecutive anchor frames (clips shorter
    than a run plus margins are skipped). The modules' train/eval modes are restored afterwards.
    """
    audios = [mel_or_audio] if isinstance(mel_or_audio, Tensor) else list(mel_or_audio)
    mouths = [mouth_frames] if isinstance(mouth_frames, Tensor) else list(mouth_frames)
    if len(audios) != len(mouths):
        raise ValueError(f"{len(audios)} audio clips but {len(mouths)} mouth clips")

    span = segment + 2 * shifts  # frames encoded per segment: the anchors and their margins
    windows, crops, stacks, starts = [], [], [], []
    offset = 0
    for audio, mouth in zip(audios, mouths, strict=True):
        visual_module.check(mouth)
        n_frames = mouth.shape[0]
        with torch.no_grad():
            mel = audio_module.log_mel(audio) if audio.ndim == 1 else audio
        covered = frame_count(mel.shape[0], audio_module.mel_fps, audio_module.video_fps)
        if covered < n_frames:
            raise ValueError(f"the audio covers {covered} video frames, the mouth crops {n_frames}")
        windows.append(audio_module.mel_windows(mel, n_frames))
        crops.append(mouth)
        stacks.append(visual_module.stack_index(n_frames) + offset)
        starts.append(offset + torch.arange(max(0, n_frames - span + 1)))  # first frame of each possible span
        offset += n_frames
    all_windows, all_crops, all_stacks, all_starts = torch.cat(windows), torch.cat(crops), torch.cat(stacks), torch.cat(starts)
    if all_starts.numel() == 0:
        raise ValueError(f"every clip is shorter than segment + 2 * shifts = {span} frames")

    # Anchor j of segment k is frame k*span + shifts + j of the batch's visual rows.
    within = torch.arange(segment) + shifts
    target = (torch.arange(segments)[:, None] * span + within[None, :]).flatten()
    parameters = list(audio_module.parameters()) + list(visual_module.parameters())
    optimizer = torch.optim.Adam(parameters, lr=lr)
    generator = torch.Generator().manual_seed(seed)
    modes = audio_module.training, visual_module.training
    audio_module.train()
    visual_module.train()
    losses = []
    for _ in range(steps):
        first = all_starts[torch.randint(all_starts.numel(), (segments,), generator=generator)]
        frames = (first[:, None] + torch.arange(span)[None, :]).flatten()  # [segments * span]
        audio_emb = audio_module.embed(all_windows[frames[target]])
        visual_emb = visual_module.embed(all_crops[all_stacks[frames]])
        loss = sync_loss(audio_emb, visual_emb, target, temperature)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    audio_module.train(modes[0])
    visual_module.train(modes[1])
    return losses
