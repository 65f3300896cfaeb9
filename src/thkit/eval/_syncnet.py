"""SyncNet (Chung & Zisserman 2016) as the lip-sync evaluation uses it: network, inputs and scores.

The published evaluation (joonson/syncnet_python, reused by Wav2Lip's `scores_LSE`) runs the
`syncnet_v2` model on a face track cropped to 224 px and on the track's 16 kHz audio:

- video: 5 consecutive frames at 25 fps, colour, BGR channel order (OpenCV's), raw 0..255 values,
  as one [3, 5, 224, 224] volume for the 3D-convolution tower. (The 2016 paper's first model took
  5 grayscale mouth crops; the released `syncnet_v2` weights, which every paper's LSE numbers come
  from, take this colour face volume, so this module follows the weights);
- audio: 13 MFCCs at 100 Hz over the same 0.2 s, a [1, 13, 20] image for the 2D tower. The MFCCs
  are python_speech_features' (rectangular 25 ms frames, 26 filters, log frame energy as c0),
  computed from int16-scaled samples, because the network was trained on exactly those;
- each tower ends in a 1024-d embedding; window i pairs video frames i..i+4 with MFCC frames
  4i..4i+19, for i in 0 .. n - 6, n being the frames both streams cover.

`sync_scores` then slides the audio embeddings against the video ones by -15..15 frames, averages
the Euclidean distances at each offset, and reports the smallest average (LSE-D), the median minus
the smallest (LSE-C) and the offset of the smallest.

The face track: the reference finds faces with S3FD, whose weights are not available offline, so
the boxes here come from dlib's 68 landmarks (thkit's preprocessing tracker), made S3FD-like (the
landmarks stop at the brows; S3FD's box reaches the forehead). The crop around each box is the
reference's: median-smoothed over 13 frames (the track's ends held, where the reference pads its
filter with zeros), square half-side s, from s above the box centre to 1.8 s below it and 1.4 s
either side, padded with grey 110, resized to 224 px. The reference also re-encodes the video
(JPEG frames, an XVID crop), which this skips. So LSE values here are not identical with the
reference pipeline's; how far they differ has not been measured (that needs the real weights).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import NamedTuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int, UInt8
from scipy.fft import dct
from scipy.ndimage import median_filter
from torch import Tensor, nn

SAMPLE_RATE = 16000
FPS = 25
WINDOW_FRAMES = 5  # video frames per window
MFCC_PER_FRAME = 4  # 100 Hz MFCC / 25 fps
WINDOW_MFCC = 20
CROP = 224
MAX_OFFSET = 15  # frames searched either way
EMBEDDING = 1024

CROP_SCALE = 0.4  # the reference's --crop_scale
PAD_VALUE = 110  # grey the reference pads the frame with
SMOOTH_FRAMES = 13  # median filter over the box track
# S3FD-like box from the landmarks' bounding box: side = scale x its longer side, centre raised by
# `raise` x side (dlib's 68 points stop at the brows, a face detector's box covers the forehead).
BOX_SCALE = 1.1
BOX_RAISE = 0.1


class SyncNet(nn.Module):
    """syncnet_v2's two towers; attribute names and layer indices match the published state dict."""

    def __init__(self, embedding: int = EMBEDDING) -> None:
        super().__init__()

        def conv2d(cin: int, cout: int, kernel: tuple[int, int], padding: int = 1) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, kernel, padding=padding), nn.BatchNorm2d(cout), nn.ReLU()]

        def conv3d(cin: int, cout: int, kernel: tuple[int, int, int], stride: tuple[int, int, int] = (1, 1, 1), padding=(0, 1, 1)) -> list[nn.Module]:
            return [nn.Conv3d(cin, cout, kernel, stride, padding), nn.BatchNorm3d(cout), nn.ReLU()]

        def head() -> nn.Sequential:
            return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, embedding))

        # [B, 1, 13, 20] MFCC -> [B, 512, 1, 1]
        self.netcnnaud = nn.Sequential(
            *conv2d(1, 64, (3, 3)), nn.Identity(),  # index 3: the published model's 1x1 max pool, a no-op
            *conv2d(64, 192, (3, 3)), nn.MaxPool2d(3, (1, 2)),
            *conv2d(192, 384, (3, 3)),
            *conv2d(384, 256, (3, 3)),
            *conv2d(256, 256, (3, 3)), nn.MaxPool2d(3, 2),
            *conv2d(256, 512, (5, 4), padding=0),
        )  # fmt: skip
        # [B, 3, 5, 224, 224] BGR volume -> [B, 512, 1, 1, 1]
        self.netcnnlip = nn.Sequential(
            *conv3d(3, 96, (5, 7, 7), (1, 2, 2), 0), nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
            *conv3d(96, 256, (1, 5, 5), (1, 2, 2)), nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
            *conv3d(256, 256, (1, 3, 3)),
            *conv3d(256, 256, (1, 3, 3)),
            *conv3d(256, 256, (1, 3, 3)), nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
            *conv3d(256, 512, (1, 6, 6), padding=0),
        )  # fmt: skip
        self.netfcaud = head()
        self.netfclip = head()

    def audio(self, mfcc: Float[Tensor, "batch 1 13 20"]) -> Float[Tensor, "batch embedding"]:
        return self.netfcaud(self.netcnnaud(mfcc).flatten(1))

    def video(self, volume: Float[Tensor, "batch 3 5 224 224"]) -> Float[Tensor, "batch embedding"]:
        return self.netfclip(self.netcnnlip(volume).flatten(1))


def mfcc(samples: Float[np.ndarray, "samples"]) -> Float[np.ndarray, "13 frames"]:
    """python_speech_features.mfcc(samples, 16000) with its defaults, for int16-scaled 16 kHz samples.

    Pre-emphasis 0.97; 400-sample frames every 160 samples, unwindowed, the last one zero-padded;
    512-point power spectrum / 512; 26 triangular mel filters on FFT bins floor(513 f / 16000)
    (0 to 8 kHz); log; orthonormal DCT-II, 13 kept; sine lifter 22; c0 replaced by log frame energy.
    """
    length, step, nfft, filters, kept, lifter = 400, 160, 512, 26, 13, 22
    tiny = np.finfo(np.float64).eps
    x = np.asarray(samples, dtype=np.float64)
    x = np.append(x[:1], x[1:] - 0.97 * x[:-1])
    count = 1 if len(x) <= length else 1 + int(np.ceil((len(x) - length) / step))
    x = np.concatenate([x, np.zeros((count - 1) * step + length - len(x))])
    frames = x[np.arange(length)[None, :] + step * np.arange(count)[:, None]]
    power = np.abs(np.fft.rfft(frames, nfft)) ** 2 / nfft
    energy = power.sum(axis=1)
    mel = np.linspace(0, 2595 * np.log10(1 + SAMPLE_RATE / 2 / 700), filters + 2)
    bins = np.floor((nfft + 1) * 700 * (10 ** (mel / 2595) - 1) / SAMPLE_RATE)
    bank = np.zeros((filters, nfft // 2 + 1))
    index = np.arange(nfft // 2 + 1)
    for j, (low, centre, high) in enumerate(zip(bins, bins[1:], bins[2:])):
        rising = (index >= low) & (index < centre)
        falling = (index >= centre) & (index < high)
        bank[j, rising] = (index[rising] - low) / (centre - low)
        bank[j, falling] = (high - index[falling]) / (high - centre)
    bands = power @ bank.T
    cepstra = dct(np.log(np.where(bands == 0, tiny, bands)), type=2, axis=1, norm="ortho")[:, :kept]
    cepstra *= 1 + lifter / 2 * np.sin(np.pi * np.arange(kept) / lifter)
    cepstra[:, 0] = np.log(np.where(energy == 0, tiny, energy))
    return cepstra.T


def int16_scaled(audio: Float[np.ndarray, "samples"]) -> Float[np.ndarray, "samples"]:
    """Float audio in [-1, 1] as the int16 sample values the reference reads from its wav file."""
    return np.clip(np.round(np.asarray(audio, dtype=np.float64) * 32768), -32768, 32767)


def face_boxes(landmarks: Float[np.ndarray, "frames 68 2"]) -> Float[np.ndarray, "frames 3"]:
    """Per frame (centre x, centre y, half side) in array pixels, median-smoothed over the track."""
    points = landmarks - 0.5  # the tracker's pixel centres sit at +1/2; arrays index from 0
    low, high = points.min(axis=1), points.max(axis=1)
    side = BOX_SCALE * (high - low).max(axis=1)
    centre = (low + high) / 2
    boxes = np.column_stack([centre[:, 0], centre[:, 1] - BOX_RAISE * side, side / 2])
    return median_filter(boxes, size=(SMOOTH_FRAMES, 1), mode="nearest")


def face_crops(frames: UInt8[np.ndarray, "frames height width 3"], boxes: Float[np.ndarray, "frames 3"]) -> UInt8[np.ndarray, "frames 224 224 3"]:
    """The reference's 224 px crop around each box: BGR, the frame padded with grey where it ends."""
    crops = np.empty((len(frames), CROP, CROP, 3), dtype=np.uint8)
    for index, (frame, (x, y, s)) in enumerate(zip(frames, boxes)):
        pad = int(s * (1 + 2 * CROP_SCALE))
        padded = cv2.copyMakeBorder(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
        x, y = x + pad, y + pad
        face = padded[int(y - s) : int(y + s * (1 + 2 * CROP_SCALE)), int(x - s * (1 + CROP_SCALE)) : int(x + s * (1 + CROP_SCALE))]
        crops[index] = cv2.resize(face, (CROP, CROP))
    return crops


def track_faces(frames: Iterable[UInt8[np.ndarray, "height width 3"]], n_frames: int) -> Float[np.ndarray, "frames 68 2"] | None:
    """dlib landmarks per frame, short dropouts interpolated; None when no frame shows a face."""
    from thkit.data.preprocess.landmarks import fill_dropouts, track_landmarks

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # several faces: the tracker keeps the largest, then the same one
        landmarks = track_landmarks((cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames), n_frames)
    if np.isnan(landmarks).all():
        return None
    return fill_dropouts(landmarks, FPS, source="the predicted video")[0]


@torch.inference_mode()
def embeddings(
    net: SyncNet,
    frames: UInt8[np.ndarray, "all height width 3"],
    picks: Int[np.ndarray, "frames"],
    boxes: Float[np.ndarray, "frames 3"],
    cepstra: Float[np.ndarray, "13 mfcc"],
    device: str,
    batch: int = 16,
) -> tuple[Float[Tensor, "windows embedding"], Float[Tensor, "windows embedding"]]:
    """Video and audio embeddings of every window (frames i..i+4 with MFCC frames 4i..4i+19).

    Frame i at 25 fps is `frames[picks[i]]`, its face box `boxes[i]`; `picks` covers the frames the
    audio lasts for (`usable_frames`). The reference stops one window early (windows 0 .. n - 6),
    and so does this, so that counts match. Crops are made a batch at a time, to bound memory.
    """
    windows = len(picks) - WINDOW_FRAMES
    video, audio = [], []
    for start in range(0, windows, batch):
        starts = range(start, min(windows, start + batch))
        span = slice(start, starts[-1] + WINDOW_FRAMES)
        crops = face_crops(frames[picks[span]], boxes[span])
        volume = np.stack([crops[i - start : i - start + WINDOW_FRAMES] for i in starts])  # [B, 5, 224, 224, 3]
        volume = torch.from_numpy(volume).to(device).permute(0, 4, 1, 2, 3).float()
        sound = np.stack([cepstra[:, MFCC_PER_FRAME * i : MFCC_PER_FRAME * i + WINDOW_MFCC] for i in starts])
        sound = torch.from_numpy(sound).to(device).float().unsqueeze(1)
        video.append(net.video(volume).cpu())
        audio.append(net.audio(sound).cpu())
    return torch.cat(video), torch.cat(audio)


def usable_frames(n_frames: int, n_samples: int) -> int:
    """Frames at 25 fps that both the video and the 16 kHz audio cover, as the reference counts them."""
    return min(n_frames, n_samples // (SAMPLE_RATE // FPS))


class SyncScores(NamedTuple):
    distance: float  # LSE-D: the smallest mean distance over the offsets
    confidence: float  # LSE-C: median mean distance minus the smallest
    offset: int  # frames, as syncnet_python reports it: MAX_OFFSET - argmin (positive: audio leads)


def sync_scores(video: Float[Tensor, "windows dim"], audio: Float[Tensor, "windows dim"], max_offset: int = MAX_OFFSET) -> SyncScores:
    """LSE-D, LSE-C and the AV offset from paired window embeddings, as syncnet_python computes them.

    For offset k (k = -max_offset..max_offset), video window i is compared with audio window
    i - k; audio windows outside the clip are zero vectors (the reference zero-pads), and the
    distance is `pairwise_distance`'s, with its 1e-6.
    """
    span = 2 * max_offset + 1
    padded = F.pad(audio, (0, 0, max_offset, max_offset))
    candidates = padded.unfold(0, span, 1)  # [windows, dim, span]: audio windows i - max_offset .. i + max_offset
    distances = F.pairwise_distance(video.unsqueeze(2).expand_as(candidates).transpose(1, 2), candidates.transpose(1, 2))
    mean = distances.mean(dim=0)  # [span]
    best = int(torch.argmin(mean))
    return SyncScores(float(mean[best]), float(torch.median(mean) - mean[best]), max_offset - best)
