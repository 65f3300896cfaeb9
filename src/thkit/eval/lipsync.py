"""Lip sync without pretrained weights: mouth motion against the audio, and the best offset between them.

Two measures, both scanned over offsets of -max_offset .. +max_offset video frames:

- the audio envelope (the baseline, needing nothing trained): the loudness of the samples under
  each video frame (their RMS in dB, floored `ENVELOPE_RANGE_DB` below the clip's loudest frame, so
  that digital silence does not dominate), correlated (Pearson) with the mouth opening measured from
  dlib's landmarks (`thkit.eval.faces.mouth_opening`). Loudness in dB follows the mouth better than
  linear RMS (r 0.50 against 0.39 with the synthetic subject's true mouth over 20 s). Speech is loud when the mouth is open, so an avatar in sync has
  a clearly positive correlation, peaking near offset 0 (a little positive: lips open just before
  the sound); a mouth that does not follow the audio correlates near 0 everywhere.
- the run's trained `sync` encoder (DAMC's Dynamic-Sync Encoder, thkit's SyncNet): the cosine
  similarity of its audio embedding and its mouth encoder's embedding of the frames' mouth crops,
  per frame; the offset maximising its mean is the audio-visual offset, as SyncNet's LSE measures
  it with a network trained on thousands of speakers, here with the subject's own (so it rates how
  well a render matches what the run learnt of this person, not an absolute sync).

Offsets follow the sync encoder's convention (`thkit.plugins.encoders._sync_train`): offset s > 0
means the video lags the audio by s frames (the mouth shows at frame t + s what is heard at frame t).
Every offset is scored on the same anchor frames t in [max_offset, frames - max_offset), so the
scores compare; a clip too short for the scan gets a smaller max_offset (the scan says which).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np
from jaxtyping import Float, UInt8

from thkit.core.timebase import Timeline, format_rate

if TYPE_CHECKING:
    import torch
    from torch import nn

    from thkit.render.pipeline import LoadedRun

DEFAULT_MAX_OFFSET = 15  # frames, SyncNet's own scan range (+-0.6 s at 25 fps)
MIN_ANCHORS = 3  # a correlation needs at least this many frames
ENVELOPE_RANGE_DB = 80.0


@dataclass(frozen=True)
class OffsetScan:
    """Scores of one measure at every offset of -max_offset .. +max_offset (NaN where undefined)."""

    max_offset: int
    scores: Float[np.ndarray, "offsets"]  # scores[i] is at offset i - max_offset

    @property
    def offsets(self) -> np.ndarray:
        return np.arange(-self.max_offset, self.max_offset + 1)

    @property
    def best(self) -> int | None:
        """The offset scoring highest; None when no offset has a score."""
        return None if np.isnan(self.scores).all() else int(np.nanargmax(self.scores)) - self.max_offset

    @property
    def best_score(self) -> float | None:
        return None if self.best is None else float(self.scores[self.best + self.max_offset])


def envelope(audio: Float[np.ndarray, "samples"], sample_rate: int, fps: Fraction, n_frames: int) -> Float[np.ndarray, "frames"]:
    """Loudness in dB of the samples under each of n_frames video frames (exact rational spans); NaN past the audio."""
    import librosa

    timeline = Timeline(audio.shape[0], sample_rate)
    spans = np.array([timeline.sample_span(index, fps) for index in range(n_frames)], dtype=np.int64).reshape(n_frames, 2)
    whole = spans[:, 1] <= audio.shape[0]
    loudness = np.full(n_frames, np.nan)
    if whole.any():
        squares = np.concatenate([[0.0], np.cumsum(np.asarray(audio, dtype=np.float64) ** 2)])  # prefix sums: one pass for all spans
        start, stop = spans[whole, 0], spans[whole, 1]
        rms = np.sqrt(np.maximum(squares[stop] - squares[start], 0) / np.maximum(stop - start, 1))
        loudness[whole] = librosa.amplitude_to_db(rms, ref=1.0, amin=1e-5, top_db=ENVELOPE_RANGE_DB)
    return loudness


def correlation(a: Float[np.ndarray, "n"], b: Float[np.ndarray, "n"]) -> float | None:
    """Pearson correlation over the entries where both are finite; None when undefined (too few, or constant)."""
    keep = np.isfinite(a) & np.isfinite(b)
    if keep.sum() < MIN_ANCHORS or np.std(a[keep]) == 0 or np.std(b[keep]) == 0:
        return None
    return float(np.corrcoef(a[keep], b[keep])[0, 1])


def scan_offsets(audio_signal: Float[np.ndarray, "frames"], video_signal: Float[np.ndarray, "frames"], max_offset: int) -> OffsetScan | None:
    """corr(audio_signal[t], video_signal[t + s]) for every offset s (see the module docstring); None if too short."""
    n_frames = audio_signal.shape[0]
    if video_signal.shape[0] != n_frames:
        raise ValueError(f"the audio signal has {n_frames} frames, the video signal {video_signal.shape[0]}")
    max_offset = min(max_offset, (n_frames - MIN_ANCHORS) // 2)
    if max_offset < 0:
        return None
    anchors = audio_signal[max_offset : n_frames - max_offset]
    scores = []
    for shift in range(-max_offset, max_offset + 1):
        value = correlation(anchors, video_signal[max_offset + shift : n_frames - max_offset + shift])
        scores.append(np.nan if value is None else value)
    return OffsetScan(max_offset, np.array(scores))


# -- the run's sync encoder ----------------------------------------------------------------------


@dataclass
class SyncEncoder:
    """A run's trained sync encoder node: its audio module and the mouth encoder trained with it."""

    node: str
    audio: nn.Module  # SyncAudioModule: audio -> [frames, dim] at `audio.video_fps`
    visual: nn.Module  # MouthEncoder: grayscale mouth crops -> [frames, dim]
    mouth_height: int
    mouth_width: int


def find_sync_encoder(loaded: LoadedRun) -> SyncEncoder | str:
    """The run's first sync encoder whose mouth encoder the run saved, or why there is none."""
    from safetensors import safe_open

    from thkit.train import run as runs

    nodes = [name for name, node in loaded.graph.nodes.items() if hasattr(node.component, "build_visual")]
    if not nodes:
        return f"skipped: the spec of {loaded.root} has no sync encoder node"
    state = loaded.root / runs.STATE_TENSORS
    if not state.is_file():
        return f"skipped: {state} is missing, and with it the mouth encoders"
    for name in nodes:
        prefix = f"aux.{name}.visual."
        with safe_open(str(state), framework="pt") as tensors:  # only the mouth encoder's tensors, not the optimizer's
            saved = {key: tensors.get_tensor(key) for key in tensors.keys() if key.startswith(prefix)}
        if not saved:
            continue
        component = loaded.graph.nodes[name].component
        visual = component.build_visual()  # type: ignore[attr-defined]
        runs.load_aux({name: visual}, saved)
        params = component.params
        visual = visual.to(loaded.device).eval().requires_grad_(False)
        return SyncEncoder(name, loaded.modules[name], visual, params.mouth_height, params.mouth_width)
    return f"skipped: no sync encoder of {loaded.root} was trained with the sync loss ({', '.join(nodes)}), so none has a mouth encoder"


@dataclass(frozen=True)
class SyncMeasure:
    cosine: Float[np.ndarray, "frames"]  # per frame, at offset 0 (NaN past the audio)
    scan: OffsetScan | None  # mean cosine at every offset


def sync_measure(
    encoder: SyncEncoder,
    frames: UInt8[np.ndarray, "frames height width 3"],
    landmarks: Float[np.ndarray, "frames 68 2"],
    fps: Fraction,
    audio: Float[np.ndarray, "samples"],
    sample_rate: int,
    max_offset: int = DEFAULT_MAX_OFFSET,
    source: str = "",
) -> SyncMeasure | str:
    """Cosine of the sync encoder's audio and mouth embeddings per frame and over offsets, or why not.

    The mouth crops are made as training made them (`thkit.train.mouth.mouth_crops`), centred on the
    lip boxes of the frames' own landmarks; frames where no face was found take interpolated boxes.
    """
    import soxr
    import torch
    import torch.nn.functional as F

    from thkit.data.preprocess.landmarks import fill_dropouts
    from thkit.eval.faces import found, lip_boxes
    from thkit.plugins.encoders._sync_train import best_offset
    from thkit.train.mouth import mouth_crops

    module_fps, module_rate = encoder.audio.video_fps, encoder.audio.sample_rate
    if module_fps != fps:
        return f"skipped: the sync encoder works at {format_rate(module_fps)} fps, the video is at {format_rate(fps)} fps"
    if not found(landmarks).any():
        return "skipped: no face found in any frame"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # long dropouts: reported as the share of faces found instead
        filled, _ = fill_dropouts(landmarks, float(fps), source)
    height, width = frames.shape[1:3]
    subject = _FramesSubject(frames, lip_boxes(filled, width, height), source)
    if sample_rate != module_rate:
        audio = soxr.resample(audio, sample_rate, module_rate, quality="HQ").astype(np.float32)
    device = next(encoder.audio.parameters()).device
    with torch.inference_mode():
        crops = mouth_crops(subject, range(frames.shape[0]), encoder.mouth_height, encoder.mouth_width)  # type: ignore[arg-type]
        samples = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).to(device)
        heard = encoder.audio({"audio": samples}, Timeline(audio.shape[0], module_rate))["features"]  # [audio frames, dim]
        seen = encoder.visual(crops.to(device))  # [frames, dim]
        n_frames = min(heard.shape[0], seen.shape[0])
        heard, seen = heard[:n_frames].float(), seen[:n_frames].float()
        cosine = np.full(frames.shape[0], np.nan)
        cosine[:n_frames] = F.cosine_similarity(heard, seen, dim=-1).double().cpu().numpy()
        shift = min(max_offset, (n_frames - 1) // 2)
        scan = None
        if shift >= 0 and n_frames > 2 * shift:
            _, scores = best_offset(heard, seen, shift)
            scan = OffsetScan(shift, scores.double().cpu().numpy())
    return SyncMeasure(cosine, scan)


class _FramesSubject:
    """What `mouth_crops` reads of a training `Subject` (lip boxes, size, images), for frames in memory."""

    def __init__(self, frames: UInt8[np.ndarray, "frames height width 3"], boxes: Float[np.ndarray, "frames 4"], source: str) -> None:
        import torch

        self.frames = frames
        self.lip_boxes = torch.from_numpy(boxes).float()
        self.height, self.width = int(frames.shape[1]), int(frames.shape[2])
        self.dataset = SimpleNamespace(root=Path(source))  # named in mouth_crops' error message

    def image(self, index: int) -> tuple[torch.Tensor, None]:
        import torch

        return torch.from_numpy(np.ascontiguousarray(self.frames[index])), None
