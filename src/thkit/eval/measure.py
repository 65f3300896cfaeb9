"""The two things `thkit eval` does, as functions: a video against its truth, and a run driven by new audio.

- `measure_video(pred, truth)`: PRED (a video file) against GT (an mp4, a dataset folder or a run
  folder), aligned by time (`thkit.eval.align`); with a run folder, the run's sync encoder is used too.
- `measure_drives(run, drives)`: the run renders each drive audio file (poses and blinks replayed
  from its training frames, as `thkit render` does), and each render is measured by its lip sync
  alone: there is no ground-truth video of new audio. This is the peers' cross-driven setting.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from thkit.core.errors import ThkitError
from thkit.eval.align import Split, align, is_run, truth_clip, video_clip
from thkit.eval.evaluate import Evaluation, evaluate_lipsync, evaluate_pair
from thkit.eval.lipsync import DEFAULT_MAX_OFFSET, SyncEncoder, find_sync_encoder


def measure_video(
    pred: str | Path,
    truth: str | Path,
    *,
    split: Split = "auto",
    trim: bool = False,
    resize: bool = False,
    max_offset: int = DEFAULT_MAX_OFFSET,
) -> Evaluation:
    """Every measure of the video `pred` against `truth` (see the module docstring)."""
    pred, truth = Path(pred), Path(truth)
    predicted = video_clip(pred)
    true = truth_clip(truth, predicted, split)
    pair = align(predicted, true, trim=trim, resize=resize)
    sync: SyncEncoder | str | None = None
    if is_run(truth):
        from thkit.render.pipeline import load_run

        sync = find_sync_encoder(load_run(truth))
    return evaluate_pair(pair, name=pred.name, sync=sync, max_offset=max_offset, info={"pred": str(pred), "truth": true.source})


def measure_drives(
    run: str | Path, drives: Sequence[str | Path], out: Path, *, max_offset: int = DEFAULT_MAX_OFFSET, progress: bool = True
) -> tuple[list[Evaluation], dict[str, Path]]:
    """Render `run` saying each file of `drives` into `out` and measure each render's lip sync.

    Returns the evaluations and the rendered mp4 of each (by evaluation name).
    """
    from thkit.audio.speech import load_speech
    from thkit.render.drive import Drive
    from thkit.render.pipeline import load_run, render_audio

    run = Path(run)
    if not is_run(run):
        raise ThkitError(f"{run}: not a run folder (--drive renders a trained run)", hint="give the folder `thkit build SPEC` trained into")
    loaded = load_run(run)
    sync = find_sync_encoder(loaded)
    context, meta = loaded.graph.context, loaded.dataset.meta
    evaluations, videos = [], {}
    for drive_path in map(Path, drives):
        audio, timeline = load_speech(drive_path, sample_rate=context.sample_rate)
        n_frames = timeline.frames(context.video_fps)
        if n_frames < 1:
            raise ThkitError(f"--drive {drive_path}: the audio is shorter than one video frame", hint="give at least 0.04 s of speech")
        name = _unique(drive_path.name, videos)
        video = out / f"{len(videos) + 1:02d}-{drive_path.stem}.mp4"  # numbered: drive files may share a name
        frames: list[np.ndarray] = []
        drive = Drive.replay(n_frames, meta.train_frames, meta.train_frames)
        render_audio(loaded, audio, timeline, drive, video, progress=progress, on_frame=lambda _, rgb, into=frames: into.append(rgb))
        evaluations.append(
            evaluate_lipsync(
                np.stack(frames), context.video_fps, audio, timeline.sample_rate, name=name, sync=sync, max_offset=max_offset,
                info={"run": str(run), "drive": str(drive_path)},
            )  # fmt: skip
        )
        videos[name] = video
    return evaluations, videos


def _unique(name: str, taken: dict[str, Path]) -> str:
    """`name`, or `name (2)`, ... when two drive files share a file name."""
    candidate, count = name, 1
    while candidate in taken:
        count += 1
        candidate = f"{name} ({count})"
    return candidate
