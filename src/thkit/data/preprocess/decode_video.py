"""Decode a video file to upright RGB frames at a target frame rate, chosen by exact rational time.

Any container, codec, frame rate and resolution FFmpeg reads (through PyAV). Frames are turned
upright by the stream's display matrix (phone videos store portrait clips sideways) and stretched
to square pixels when the stream's sample aspect ratio is not 1.

Resampling is by time, never by count: every source frame keeps its presentation time as a
Fraction (pts x time_base), output frame j covers [j/fps, (j+1)/fps) after the first frame, and it
shows the source frame on screen at the middle of that interval, (j + 1/2)/fps. This is right for
any pair of rates (30000/1001 to 25, 60 to 25, 15 to 25) and for variable frame rate phone clips,
and it never drifts, because no float time is ever summed.
"""

from __future__ import annotations

import bisect
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from thkit.audio.decode import load_audio
from thkit.core.errors import ThkitError
from thkit.data.layout import SAMPLE_RATE
from thkit.data.preprocess.problems import MIN_SECONDS, AudioLengthWarning, VariableFrameRateWarning

VFR_TOLERANCE = 0.2  # an interval more than 20% off the median one is irregular ...
VFR_FRACTION = 0.01  # ... and a clip with more than 1% irregular intervals has a variable rate


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about the video, before decoding any frame."""

    path: Path
    width: int  # as displayed: after rotation and square pixels
    height: int
    rotation: int  # degrees counter-clockwise that turn the coded picture upright (0, 90, 180, -90)
    pixel_aspect: Fraction  # the coded picture is stretched horizontally by this to get square pixels
    nominal_rate: Fraction
    seconds: float  # the container's estimate; exact times come from the frames themselves
    audio_start: Fraction  # presentation time of the first audio sample


@dataclass(frozen=True)
class Timing:
    """Exact presentation times of every source frame, and which one each output frame shows."""

    times: list[Fraction]  # per source frame, in presentation order, relative to the first frame
    end: Fraction  # when the last source frame stops being shown
    variable_rate: bool

    def output_count(self, fps: Fraction) -> int:
        """Whole output frames in the clip: floor(duration x fps)."""
        return int(self.end * fps)

    def picks(self, fps: Fraction) -> np.ndarray:
        """[n_out] int: the source frame on screen at the middle of each output frame's interval."""
        picks = np.empty(self.output_count(fps), dtype=np.int64)
        for j in range(picks.shape[0]):
            middle = (2 * j + 1) / (2 * fps)
            picks[j] = max(bisect.bisect_right(self.times, middle) - 1, 0)
        return picks


def _open(path: Path) -> av.container.InputContainer:
    if not path.is_file():
        raise ThkitError(f"{path}: no such file", hint="check the path")
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as error:
        raise ThkitError(f"{path}: not a readable video file ({error})", hint="re-export it as mp4 (H.264 + AAC)") from None


def probe(path: Path) -> VideoInfo:
    """Check the file is a video with sound and at least MIN_SECONDS long; ThkitError if not."""
    path = Path(path)
    with _open(path) as container:
        if not container.streams.video:
            raise ThkitError(f"{path}: has no video stream", hint="give a video of the subject talking")
        if not container.streams.audio:
            raise ThkitError(
                f"{path}: has no audio stream; a talking-head dataset needs the speech",
                hint="give the original recording with its sound, or mux the audio in first (ffmpeg -i video -i audio -c copy out.mp4)",
            )
        stream = container.streams.video[0]
        audio = container.streams.audio[0]
        try:
            first = next(container.decode(stream))
        except (StopIteration, av.error.FFmpegError) as error:
            raise ThkitError(f"{path}: no decodable video frame ({error or 'empty stream'})", hint="re-export the file") from None
        rotation = int(round(first.rotation / 90.0)) * 90 % 360
        rotation = rotation - 360 if rotation > 180 else rotation
        sar = stream.sample_aspect_ratio
        aspect = Fraction(sar.numerator, sar.denominator) if sar and sar.numerator > 0 else Fraction(1)
        coded_width = round(first.width * aspect)
        width, height = (coded_width, first.height) if rotation % 180 == 0 else (first.height, coded_width)
        if container.duration is not None:
            seconds = container.duration / av.time_base
        elif stream.duration is not None:
            seconds = float(stream.duration * stream.time_base)
        else:
            seconds = float("nan")
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        audio_start = Fraction(audio.start_time * audio.time_base) if audio.start_time is not None else Fraction(0)
        video_start = Fraction(first.pts * first.time_base) if first.pts is not None else Fraction(0)
    if seconds == seconds and seconds < MIN_SECONDS:
        raise ThkitError(
            f"{path}: the video is {seconds:.1f} s long; preprocessing needs at least {MIN_SECONDS} s",
            hint="give a longer recording (1 to 5 minutes of the subject talking works best)",
        )
    return VideoInfo(path, width, height, rotation, aspect, Fraction(rate), seconds, audio_start - video_start)


def frames(info: VideoInfo, *, gray: bool = False) -> Iterator[tuple[Fraction, np.ndarray]]:
    """(time after the first frame, upright frame) for every source frame, in presentation order.

    Frames are [H, W, 3] uint8 RGB, or [H, W] uint8 luma when `gray`.
    """
    for time, frame in _decoded(info):
        yield time, _upright(frame, info, gray)


def _decoded(info: VideoInfo) -> Iterator[tuple[Fraction, av.VideoFrame]]:
    with _open(info.path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start: Fraction | None = None
        count = 0
        try:
            for frame in container.decode(stream):
                if frame.pts is not None and frame.time_base is not None:
                    time = Fraction(frame.pts * frame.time_base)
                else:
                    time = Fraction(count) / info.nominal_rate
                start = time if start is None else start
                yield time - start, frame
                count += 1
        except av.error.FFmpegError as error:
            raise ThkitError(f"{info.path}: corrupt or truncated video at frame {count} ({error})", hint="re-export the file") from None
    if count == 0:
        raise ThkitError(f"{info.path}: no decodable video frame", hint="re-export the file")


def _upright(frame: av.VideoFrame, info: VideoInfo, gray: bool) -> np.ndarray:
    fmt = "gray" if gray else "rgb24"
    if info.pixel_aspect != 1:
        frame = frame.reformat(width=round(frame.width * info.pixel_aspect), height=frame.height, format=fmt)
    picture = frame.to_ndarray(format=fmt)
    if info.rotation:
        picture = np.ascontiguousarray(np.rot90(picture, k=info.rotation // 90))
    return picture


def timing(times: list[Fraction], info: VideoInfo) -> Timing:
    """Exact timing from the source frames' times; warns when the frame rate varies."""
    if len(times) < 2:
        raise ThkitError(f"{info.path}: only {len(times)} decodable frame(s)", hint="re-export the file")
    ordered = sorted(times)
    intervals = np.array([float(b - a) for a, b in zip(ordered[:-1], ordered[1:])])
    typical = float(np.median(intervals))
    irregular = float(np.mean(np.abs(intervals - typical) > VFR_TOLERANCE * typical))
    variable = irregular > VFR_FRACTION
    if variable:
        warnings.warn(
            f"{info.path}: variable frame rate ({irregular:.0%} of frame intervals differ from the typical "
            f"{1 / typical:.2f} fps by more than {VFR_TOLERANCE:.0%}); frames are picked by their timestamps",
            VariableFrameRateWarning,
            stacklevel=2,
        )
    last = ordered[-1] + Fraction(typical).limit_denominator(1_000_000)
    if last < MIN_SECONDS:
        raise ThkitError(
            f"{info.path}: the video is {float(last):.1f} s long; preprocessing needs at least {MIN_SECONDS} s",
            hint="give a longer recording (1 to 5 minutes of the subject talking works best)",
        )
    return Timing(ordered, last, variable)


def resampled(info: VideoInfo, picks: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(output index, RGB frame) for every output frame, in order, decoding the file once."""
    wanted = np.searchsorted(picks, np.arange(picks.max() + 2))  # first output index showing each source frame
    for source, (_, frame) in enumerate(_decoded(info)):
        if source > picks[-1]:
            return
        if wanted[source] < wanted[source + 1]:  # frames no output shows are never converted
            picture = _upright(frame, info, gray=False)
            for index in range(wanted[source], wanted[source + 1]):
                yield index, picture


def audio(info: VideoInfo, n_frames: int, fps: Fraction) -> np.ndarray:
    """The 16 kHz mono sound under the output frames, exactly ceil(n_frames / fps x 16000) samples."""
    sound = load_audio(info.path, SAMPLE_RATE)
    length = -((-n_frames * SAMPLE_RATE * fps.denominator) // fps.numerator)
    lead = int(round(info.audio_start * SAMPLE_RATE))  # audio starting after the video is padded in front
    if lead > 0:
        sound = np.concatenate([np.zeros(lead, dtype=np.float32), sound])
    elif lead < 0:
        sound = sound[-lead:]
    covered = min(sound.shape[0], length) / length
    if covered < 0.95 or abs(lead) > SAMPLE_RATE // 2:
        warnings.warn(
            f"{info.path}: the audio covers {covered:.0%} of the video and starts {float(info.audio_start):+.2f} s "
            "from the first frame; the rest is silence",
            AudioLengthWarning,
            stacklevel=2,
        )
    out = np.zeros(length, dtype=np.float32)
    out[: min(length, sound.shape[0])] = sound[:length]
    return out
