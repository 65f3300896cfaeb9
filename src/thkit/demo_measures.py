"""What `thkit demo` measures in rendered frames: image quality against the ground truth, and the
mouth opening as dlib's tracker (the preprocessing's) sees it, or as the synthetic generator made it."""

from __future__ import annotations

import math

import numpy as np


def measure_mouth(frames: np.ndarray) -> np.ndarray:
    """[F] mouth opening in RGB frames [F, H, W, 3] as `thkit eval` measures it: dlib's 68 landmarks,
    tracked as preprocessing does, inner-lip gap over face height; NaN where no face is found (not
    interpolated: correlations are taken over the frames measured)."""
    from thkit.eval.faces import landmarks_of, mouth_opening

    return mouth_opening(landmarks_of(frames))


def generator_mouth(audio: np.ndarray, text: str, n_frames: int, fps: float) -> np.ndarray:
    """The synthetic generator's mouth opening for speech `audio` saying `text`, per video frame: its
    phones aligned by pocketsphinx, through the generator's visemes and head geometry."""
    from thkit.data.synth.motion import frame_times
    from thkit.data.synth.portrait import build_head, mouth_opening
    from thkit.data.synth.speech import Aligner
    from thkit.data.synth.visemes import mouth_parameters

    phones = Aligner().align(audio, text)
    shape = mouth_parameters(phones, frame_times(n_frames, fps))
    expression = np.column_stack([shape, np.zeros(n_frames)])  # no blink
    return mouth_opening(build_head().pose_vertices(expression, first=68)).astype(np.float64)


def psnr(rendered: np.ndarray, truth: np.ndarray) -> float:
    """PSNR in dB over every pixel of every frame (uint8 frames, peak 1 after scaling)."""
    mse = float(np.mean((rendered.astype(np.float64) / 255 - truth.astype(np.float64) / 255) ** 2))
    return 10 * math.log10(1 / mse) if mse > 0 else math.inf


def ssim(rendered: np.ndarray, truth: np.ndarray) -> float:
    """Mean SSIM of whole frames (the trainer's Gaussian-window SSIM)."""
    import torch

    from thkit.train.losses import structural_similarity

    def tensor(frames: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(255)

    return float(structural_similarity(tensor(rendered), tensor(truth)).mean())
