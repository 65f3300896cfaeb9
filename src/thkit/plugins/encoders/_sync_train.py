"""Training and measuring the `sync` encoder: contrastive loss, offset scan, and `fit_sync`.

The loss is InfoNCE (as in CLIP or SyncNet's successors) over cosine similarities. For each anchor
frame t, the audio embedding at t must pick the visual embedding at t out of:

- the visual embeddings at t +- 1 .. t +- `shifts` of the same clip: hard negatives, because the
  encoders must learn *timing*, not only which mouth shapes go with which sounds;
- the visual embeddings of every other anchor in the batch (other times, other clips).

Offsets follow one sign convention throughout: offset s > 0 means the video lags the audio by s
frames (the mouth shows at frame t + s what the audio says at frame t).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from thkit.core.timebase import frame_count
from thkit.plugins.encoders._sync_module import MouthEncoder, SyncAudioModule


def sync_loss(
    audio: Float[Tensor, "batch dim"],
    visual: Float[Tensor, "batch dim"],
    shifted: Float[Tensor, "batch shifts dim"],
    temperature: float,
) -> Float[Tensor, ""]:
    """InfoNCE: audio[i]'s positive is visual[i]; negatives are visual[j != i] and shifted[i, :]."""
    a, v, s = (F.normalize(x, dim=-1) for x in (audio, visual, shifted))
    logits = torch.cat([a @ v.T, torch.einsum("bd,bsd->bs", a, s)], dim=1) / temperature
    return F.cross_entropy(logits, torch.arange(audio.shape[0], device=audio.device))


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
    batch: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
) -> list[float]:
    """Train both encoders for `steps` Adam steps on one clip or several; returns the loss per step.

    `mel_or_audio` is, per clip, either mono audio [samples] at `audio_module.sample_rate` or its
    log-mel [mel_frames, n_mels] from `audio_module.log_mel`; `mouth_frames` is, per clip, the
    grayscale mouth crops [frames, height, width] in [0, 1] at the video rate, frame 0 starting with
    the audio. Anchors are drawn from frames with `shifts` frames of the same clip on both sides.
    The modules' train/eval modes are restored afterwards.
    """
    audios = [mel_or_audio] if isinstance(mel_or_audio, Tensor) else list(mel_or_audio)
    mouths = [mouth_frames] if isinstance(mouth_frames, Tensor) else list(mouth_frames)
    if len(audios) != len(mouths):
        raise ValueError(f"{len(audios)} audio clips but {len(mouths)} mouth clips")

    windows, crops, stacks, anchors = [], [], [], []
    start = 0
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
        stacks.append(visual_module.stack_index(n_frames) + start)
        anchors.append(torch.arange(start + shifts, start + n_frames - shifts))
        start += n_frames
    all_windows, all_crops = torch.cat(windows), torch.cat(crops)
    all_stacks, all_anchors = torch.cat(stacks), torch.cat(anchors)
    if all_anchors.numel() < 2:
        raise ValueError(f"clips too short for sync training with shifts={shifts}")

    offsets = torch.tensor([0] + [s for s in range(-shifts, shifts + 1) if s != 0])
    parameters = list(audio_module.parameters()) + list(visual_module.parameters())
    optimizer = torch.optim.Adam(parameters, lr=lr)
    generator = torch.Generator().manual_seed(seed)
    modes = audio_module.training, visual_module.training
    audio_module.train()
    visual_module.train()
    losses = []
    for _ in range(steps):
        pick = all_anchors[torch.randperm(all_anchors.numel(), generator=generator)[:batch]]
        audio_emb = audio_module.embed(all_windows[pick])
        frames = pick[:, None] + offsets[None, :]  # [batch, 1 + 2*shifts], the anchor first
        visual_emb = visual_module.embed(all_crops[all_stacks[frames.flatten()]]).view(*frames.shape, -1)
        loss = sync_loss(audio_emb, visual_emb[:, 0], visual_emb[:, 1:], temperature)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    audio_module.train(modes[0])
    visual_module.train(modes[1])
    return losses
