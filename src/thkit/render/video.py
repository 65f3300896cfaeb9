"""Rendered frames and their audio as one mp4: H.264 video, AAC audio, in exact sync (PyAV).

Sync. Video frame i has presentation time i / fps exactly (time base 1 / fps, a rational rate such
as 30000/1001 included); audio sample k has time k / sample_rate (time base 1 / sample_rate). The
audio's AAC encoder delay is recorded by the muxer as an edit list, so decoders drop it and the
first decoded sample is sample 0. A clip of n samples gets floor(n * fps / sample_rate) frames
(`Timeline.frames`), so the video ends at most one frame before the audio does.

Audio packets are interleaved with the frames they belong to (frames are written as they are
rendered, not collected first), so memory does not grow with the clip and players stream the file
without seeking. The file is written under a temporary name and renamed into place when complete:
an interrupted render never leaves a truncated mp4 under the real name.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import numpy as np

AAC_FRAME = 1024  # samples per AAC frame
AUDIO_BITRATE = 96000
CRF = 18  # visually lossless for these renders


class AudioVideoWriter:
    """`add(rgb)` for every frame in order, then `close()`. Use as a context manager.

    `audio` is mono float32 in [-1, 1] at `sample_rate`, covering the whole clip. Frames are uint8
    RGB [H, W, 3]; odd sizes are padded by repeating the last row or column (H.264 needs even ones).
    """

    def __init__(self, path: str | Path, *, width: int, height: int, fps: Fraction, audio: np.ndarray, sample_rate: int) -> None:
        import av

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial = self.path.with_name(f".{self.path.name}.partial.mp4")
        self.width, self.height = width, height
        self.fps = Fraction(fps)
        self.sample_rate = sample_rate
        self.audio = np.ascontiguousarray(np.clip(audio, -1, 1), dtype=np.float32)
        self.container = av.open(str(self.partial), mode="w", format="mp4")
        self.video = self.container.add_stream("libx264", rate=self.fps)
        self.video.width, self.video.height = width + width % 2, height + height % 2
        self.video.pix_fmt = "yuv420p"
        self.video.options = {"crf": str(CRF), "preset": "veryfast"}
        self.sound = self.container.add_stream("aac", rate=sample_rate, layout="mono")
        self.sound.bit_rate = AUDIO_BITRATE
        self.frames = 0
        self.samples = 0

    def __enter__(self) -> AudioVideoWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()

    def add(self, rgb: np.ndarray) -> None:
        import av

        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"frame must be uint8 [{self.height}, {self.width}, 3], got {rgb.dtype} {list(rgb.shape)}")
        padded = np.pad(rgb, ((0, self.height % 2), (0, self.width % 2), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(padded), format="rgb24")
        frame.pts = self.frames
        frame.time_base = 1 / self.fps
        self.container.mux(self.video.encode(frame))
        self.frames += 1
        # The audio up to the end of this frame's time span.
        self._audio_until(self.frames * self.sample_rate * self.fps.denominator // self.fps.numerator)

    def close(self) -> Path:
        """Flush both encoders and move the file into place; returns its path."""
        self._audio_until(len(self.audio))
        self.container.mux(self.video.encode(None))
        self.container.mux(self.sound.encode(None))
        self.container.close()
        os.replace(self.partial, self.path)
        return self.path

    def abort(self) -> None:
        """Close and delete the unfinished file."""
        try:
            self.container.close()
        finally:
            self.partial.unlink(missing_ok=True)

    def _audio_until(self, stop: int) -> None:
        """Encode whole AAC frames up to sample `stop` (the last, short one only at the clip's end)."""
        import av

        stop = min(stop, len(self.audio))
        while self.samples < stop and (stop - self.samples >= AAC_FRAME or stop == len(self.audio)):
            chunk = self.audio[self.samples : self.samples + AAC_FRAME]
            frame = av.AudioFrame.from_ndarray(chunk[None], format="fltp", layout="mono")
            frame.sample_rate = self.sample_rate
            frame.pts = self.samples
            frame.time_base = Fraction(1, self.sample_rate)
            self.container.mux(self.sound.encode(frame))
            self.samples += len(chunk)


def read_video(path: str | Path) -> tuple[np.ndarray, Fraction]:
    """Every frame of an mp4's video stream as uint8 [F, H, W, 3], and its frame rate."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        rate = Fraction(stream.average_rate) if stream.average_rate else Fraction(stream.base_rate)
    return np.stack(frames), rate
