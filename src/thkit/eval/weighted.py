"""The metrics that need pretrained networks: LPIPS, FID, LSE-D and LSE-C.

No PyPI package ships these networks' weights, so the user puts each file in the weights folder,
`$THKIT_WEIGHTS` (default `~/.cache/thkit/weights`, the folder the training's LPIPS loss reads):

| metric | file under the weights folder | the file as published |
|---|---|---|
| lpips | `lpips/alexnet.pth` and `lpips/alex.pth` | see `thkit.train.lpips` |
| fid | `fid/pt_inception-2015-12-05-6726825d.pth` | github.com/mseitzer/pytorch-fid/releases/download/fid_weights/ (the file papers' FID uses) |
| fid, instead | `fid/inception_v3_google-0cc3c7bd.pth` | download.pytorch.org/models/ (self-consistent, not comparable with papers) |
| lse_d, lse_c | `syncnet/syncnet_v2.model` | www.robots.ox.ac.uk/~vgg/software/lipsync/data/ (joonson/syncnet_python) |

Any `pt_inception-2015-12-05*` or `inception_v3_google-*` name is found, and every file may also be
a `.safetensors` of the same tensors. Torch files are read with `weights_only=True`, which runs no
code. A metric whose file is absent has the value "skipped: put <file> at <path>" instead of a
number, so that the rest of an evaluation still runs; a file that is there but unreadable, or holds
another network, is a ThkitError naming it.

How each is measured (the talking-head papers' protocols, see the research notes, section 3):
- LPIPS: lpips v0.1 "alex" on whole frames, the mean over paired frames (ER-NeRF's and
  SyncTalk's `LPIPSMeter(net='alex')`);
- FID: Inception-v3 pool features of every predicted frame against every true frame, the Fréchet
  distance of the two Gaussians (torchmetrics). FID from a few hundred frames is biased upwards;
  compare only values measured on the same number of frames;
- LSE-D, LSE-C: SyncNet on the predicted video resampled to 25 fps and its audio at 16 kHz, as
  Wav2Lip's evaluation runs syncnet_python (`thkit.eval._syncnet` says how the crops differ).
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from jaxtyping import Float, UInt8
from torch import Tensor, nn

from thkit.core.errors import ThkitError
from thkit.core.timebase import as_rate, frame_count, frame_spans
from thkit.eval import _syncnet
from thkit.eval._syncnet import SyncNet, SyncScores, sync_scores
from thkit.train import lpips as lpips_module
from thkit.train.lpips import weights_root

if TYPE_CHECKING:
    from thkit.eval._inception import Variant

__all__ = [
    "SyncScores",
    "fid_score",
    "inception_file",
    "load_inception",
    "load_syncnet",
    "lpips_score",
    "lse_scores",
    "sync_scores",
    "syncnet_file",
    "weighted_metrics",
    "weights_root",
]

Frames = UInt8[np.ndarray, "frames height width 3"]

SUFFIXES = (".pth", ".model", ".safetensors")
FID_FOLDER = "fid"
FID_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_FILES: dict[str, Variant] = {"pt_inception-2015-12-05*": "tensorflow", "inception_v3_google-*": "torchvision"}  # name -> network
SYNCNET_FOLDER, SYNCNET_STEM = "syncnet", "syncnet_v2"
LPIPS_FILES = {  # file stem under lpips/ -> the file as published
    lpips_module.BACKBONE: "torchvision's alexnet-owt-7be5be79.pth",
    lpips_module.HEADS: "lpips' weights/v0.1/alex.pth",
}


def weighted_metrics(
    pred: Frames,
    truth: Frames | None,
    audio: Float[np.ndarray, "samples"],
    sample_rate: int,
    fps: Fraction | float,
    *,
    device: str | None = None,
) -> dict[str, float | str]:
    """LPIPS and FID against `truth` (when given: cross-driven evaluation has none), LSE-D and LSE-C
    of `pred` with `audio`. `pred` and `truth` are RGB frames paired by time, `audio` mono, starting
    with the first frame. A value is a string, "skipped: ...", where it cannot be measured."""
    metrics: dict[str, float | str] = {}
    if truth is not None:
        metrics["lpips"] = lpips_score(pred, truth, device=device)
        metrics["fid"] = fid_score(pred, truth, device=device)
    sync = lse_scores(pred, audio, sample_rate, fps, device=device)
    metrics["lse_d"] = sync if isinstance(sync, str) else sync.distance
    metrics["lse_c"] = sync if isinstance(sync, str) else sync.confidence
    return metrics


# ---- LPIPS ----


def lpips_score(pred: Frames, truth: Frames, *, device: str | None = None, batch: int = 8) -> float | str:
    """Mean LPIPS (alex) over paired frames of equal size (at least 32 px)."""
    if pred.shape != truth.shape or len(pred) == 0:
        raise ValueError(f"LPIPS compares paired frames: got {pred.shape} and {truth.shape}")
    folder = weights_root() / "lpips"
    missing = [(published, folder / f"{stem}.pth") for stem, published in LPIPS_FILES.items() if lpips_module.weight_file(stem) is None]
    if missing:
        return _skipped(missing)
    device = _device(device)
    metric = lpips_module.Lpips(device)
    total = 0.0
    with torch.inference_mode():
        for start in range(0, len(pred), batch):
            total += float(metric(_unit(pred[start : start + batch], device), _unit(truth[start : start + batch], device)).sum())
    return total / len(pred)


# ---- FID ----


def inception_file() -> tuple[Path, Variant] | None:
    """The Inception weight file under `<weights>/fid/` and the network it is for, or None."""
    for pattern, variant in FID_FILES.items():
        found = _find(weights_root() / FID_FOLDER, pattern)
        if found is not None:
            return found, variant
    return None


def load_inception(device: str = "cpu") -> nn.Module:
    """The FID feature extractor (uint8 [N, 3, H, W] -> [N, 2048]) with the user's weights."""
    from thkit.eval import _inception  # imports torchvision (3 s), needed only here

    located = inception_file()
    if located is None:
        raise ThkitError("no Inception-v3 weights for FID", hint=_put(_fid_files()))
    path, variant = located
    net = _inception.inception(variant)
    _load_into(net, _inception.backbone_state(_read(path)), path, "Inception-v3")
    return _inception.InceptionFeatures(net).to(device)


def fid_score(pred: Frames, truth: Frames, *, device: str | None = None, batch: int = 16) -> float | str:
    """FID between the predicted frames and the true frames (any counts of at least 2, any sizes)."""
    if inception_file() is None:
        return _skipped(_fid_files())
    if min(len(pred), len(truth)) < 2:
        return "skipped: FID needs at least 2 frames in each video"
    from torchmetrics.image.fid import FrechetInceptionDistance

    device = _device(device)
    fid = FrechetInceptionDistance(feature=load_inception(device)).to(device)
    with torch.inference_mode():
        for frames, real in ((truth, True), (pred, False)):
            for start in range(0, len(frames), batch):
                chunk = np.ascontiguousarray(frames[start : start + batch])
                fid.update(torch.from_numpy(chunk).to(device).permute(0, 3, 1, 2), real=real)
        return max(0.0, float(fid.compute()))  # identical sets give about -1e-6: eigenvalue round-off


# ---- LSE-D, LSE-C ----


def syncnet_file() -> Path | None:
    """`<weights>/syncnet/syncnet_v2.model` (or `.pth`, `.safetensors`), or None."""
    return _find(weights_root() / SYNCNET_FOLDER, SYNCNET_STEM)


def load_syncnet(device: str = "cpu") -> SyncNet:
    """syncnet_v2 with the user's weights, in eval mode."""
    path = syncnet_file()
    if path is None:
        raise ThkitError("no SyncNet weights for LSE-D and LSE-C", hint=_put(_syncnet_files()))
    net = SyncNet()
    _load_into(net, _read(path), path, "SyncNet (syncnet_v2)")
    return net.to(device).eval().requires_grad_(False)


def lse_scores(
    pred: Frames, audio: Float[np.ndarray, "samples"], sample_rate: int, fps: Fraction | float, *, device: str | None = None, batch: int = 16
) -> SyncScores | str:
    """LSE-D, LSE-C and the AV offset of `pred` with mono `audio` starting at its first frame.

    The frames are resampled to 25 fps (each output frame is the one shown at its start time) and the
    audio to 16 kHz, as the reference's ffmpeg calls do; then `thkit.eval._syncnet` does the rest.
    A string says why it was skipped: no weights, a clip under 6 frames at 25 fps, or no face.
    """
    if audio.ndim != 1:
        raise ValueError(f"LSE needs mono audio, got shape {audio.shape}")
    if syncnet_file() is None:
        return _skipped(_syncnet_files())
    rate = as_rate(fps)
    n_frames = frame_count(len(pred), rate, _syncnet.FPS)
    samples = np.asarray(audio, dtype=np.float32)
    if sample_rate != _syncnet.SAMPLE_RATE:
        import soxr

        samples = soxr.resample(samples, sample_rate, _syncnet.SAMPLE_RATE, quality="HQ")
    usable = _syncnet.usable_frames(n_frames, len(samples))
    if usable <= _syncnet.WINDOW_FRAMES:
        seconds = (_syncnet.WINDOW_FRAMES + 1) / _syncnet.FPS
        return f"skipped: LSE needs at least {seconds:.2f} s of video and audio, got {usable} frames at {_syncnet.FPS} fps"
    device = _device(device)
    net = load_syncnet(device)
    picks = frame_spans(n_frames, _syncnet.FPS, rate, len(pred))[0][:usable]
    landmarks = _syncnet.track_faces((pred[index] for index in picks), usable)
    if landmarks is None:
        return "skipped: no face found in the predicted video (dlib)"
    cepstra = _syncnet.mfcc(_syncnet.int16_scaled(samples))
    video, sound = _syncnet.embeddings(net, pred, picks, _syncnet.face_boxes(landmarks), cepstra, device, batch)
    return sync_scores(video, sound)


# ---- weight files ----


def _find(folder: Path, pattern: str) -> Path | None:
    """The first file `folder/<pattern><suffix>` for the known suffixes, by name; None when none."""
    for suffix in SUFFIXES:
        found = sorted(folder.glob(pattern + suffix))
        if found:
            return found[0]
    return None


def _read(path: Path) -> dict[str, Tensor]:
    """The tensors in a safetensors or torch file; ThkitError naming the file when it is not one."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt, truncated or foreign: any reader error means the same
        raise ThkitError(f"{path}: not a readable weights file ({type(error).__name__}: {error})") from None
    if not isinstance(state, Mapping) or not all(isinstance(value, Tensor) for value in state.values()):
        raise ThkitError(f"{path}: holds {type(state).__name__}, not a state dict of tensors")
    return dict(state)


def _load_into(net: nn.Module, state: Mapping[str, Tensor], path: Path, network: str) -> None:
    """Load a state dict whose names and shapes must match; ThkitError saying what differs.

    Batch-norm step counters may be absent (files saved before PyTorch 0.4.1 have none, and
    inference never reads them)."""
    expected = net.state_dict()
    missing = [name for name in expected if name not in state and not name.endswith(".num_batches_tracked")]
    unexpected = [name for name in state if name not in expected]
    reshaped = [name for name in expected if name in state and state[name].shape != expected[name].shape]
    problems = [
        f"{len(names)} tensors {what} (e.g. {names[0]})"
        for names, what in ((missing, "missing"), (unexpected, "not in the network"), (reshaped, "of another shape"))
        if names
    ]
    if problems:
        raise ThkitError(f"{path}: not {network} weights: " + "; ".join(problems))
    net.load_state_dict(state, strict=False)  # checked above


def _put(files: list[tuple[str, Path]]) -> str:
    """'put <file as published> at <path>', for each file."""
    return " and ".join(f"put {published} at {path}" for published, path in files)


def _skipped(files: list[tuple[str, Path]]) -> str:
    return f"skipped: {_put(files)}"


def _fid_files() -> list[tuple[str, Path]]:
    return [(FID_FILE, weights_root() / FID_FOLDER / FID_FILE)]


def _syncnet_files() -> list[tuple[str, Path]]:
    name = f"{SYNCNET_STEM}.model"
    return [(name, weights_root() / SYNCNET_FOLDER / name)]


def _device(device: str | None) -> str:
    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def _unit(frames: Frames, device: str) -> Float[Tensor, "frames 3 height width"]:
    return torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2).float().div(255)
