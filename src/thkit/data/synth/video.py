"""Writing the subject's video: H.264 frames with the speech muxed in as AAC, in one mp4.

Audio packets are interleaved with the frames they belong to, so players and decoders stream the
file without seeking. The file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

AAC_FRAME = 1024  # samples per AAC frame


class Mp4Writer:
    """`add(rgb)` frame by frame, then `close()`; audio is mono float32 covering the whole video."""

    def __init__(self, path: Path, size: int, fps: int, audio: np.ndarray, sample_rate: int, crf: int = 18) -> None:
        self.path = Path(path)
        self.partial = self.path.with_name(f".{self.path.name}.partial.mp4")
        self.container = av.open(str(self.partial), mode="w")
        self.video = self.container.add_stream("libx264", rate=fps)
        self.video.width = self.video.height = size
        self.video.pix_fmt = "yuv420p"
        self.video.options = {"crf": str(crf), "preset": "veryfast"}
        self.sound = self.container.add_stream("aac", rate=sample_rate)
        self.sound.layout = "mono"
        self.sound.bit_rate = 64000
        self.fps = fps
        self.sample_rate = sample_rate
        self.audio = np.ascontiguousarray(audio, dtype=np.float32)
        self.frames = 0
        self.samples = 0

    def add(self, rgb: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = self.frames
        frame.time_base = Fraction(1, self.fps)
        self.container.mux(self.video.encode(frame))
        self.frames += 1
        self._audio_until(self.frames * self.sample_rate // self.fps)

    def close(self) -> Path:
        self._audio_until(len(self.audio))
        self.container.mux(self.video.encode(None))
        self.container.mux(self.sound.encode(None))
        self.container.close()
        os.replace(self.partial, self.path)
        return self.path

    def _audio_until(self, stop: int) -> None:
        """Encode whole AAC frames up to sample `stop` (the last, short one only at the end)."""
        stop = min(stop, len(self.audio))
        while self.samples < stop and (stop - self.samples >= AAC_FRAME or stop == len(self.audio)):
            chunk = self.audio[self.samples : self.samples + AAC_FRAME]
            frame = av.AudioFrame.from_ndarray(chunk[None], format="fltp", layout="mono")
            frame.sample_rate = self.sample_rate
            frame.pts = self.samples
            frame.time_base = Fraction(1, self.sample_rate)
            self.container.mux(self.sound.encode(frame))
            self.samples += len(chunk)
