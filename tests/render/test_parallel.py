"""Frames drawn side by side come back in order and equal to frames drawn one at a time."""

from __future__ import annotations

import threading

import numpy as np
import torch

from thkit.core.timebase import Timeline
from thkit.render.drive import Drive
from thkit.render.parallel import default_workers, frames_in_order
from thkit.render.pipeline import load_run, render_audio


def test_frames_come_back_in_order_and_torch_threads_are_restored():
    threads_before = torch.get_num_threads()
    seen: list[tuple[int, str, bool, int]] = []

    def draw(index: int) -> np.ndarray:
        seen.append((index, threading.current_thread().name, torch.is_inference_mode_enabled(), torch.get_num_threads()))
        return np.full((2, 2, 3), index, dtype=np.uint8)

    frames = list(frames_in_order(draw, 9, workers=2))
    assert [int(frame[0, 0, 0]) for frame in frames] == list(range(9))
    assert seen[0][0] == 0 and not seen[0][1].startswith("thkit-frame")  # the first frame alone, in the caller
    workers = [entry for entry in seen if entry[1].startswith("thkit-frame")]
    assert len(workers) == 8 and all(inference and threads == 1 for _, _, inference, threads in workers)
    assert torch.get_num_threads() == threads_before
    assert [int(frame[0, 0, 0]) for frame in frames_in_order(draw, 3, workers=1)] == [0, 1, 2]
    assert default_workers(torch.device("cpu")) == torch.get_num_threads()


def test_a_run_renders_the_same_frames_two_at_a_time(tiny_run, tmp_path):
    loaded = load_run(tiny_run)
    audio = loaded.dataset.audio()[:16000]
    timeline = Timeline(len(audio), 16000)
    meta = loaded.dataset.meta
    drive = Drive.replay(timeline.frames(loaded.graph.context.video_fps), meta.train_frames, meta.train_frames)
    drawn: dict[int, list[np.ndarray]] = {1: [], 2: []}
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # one intra-op thread either way, so the arithmetic is the same
    try:
        for workers in (1, 2):
            render_audio(loaded, audio, timeline, drive, tmp_path / f"{workers}.mp4", progress=False, workers=workers,
                         on_frame=lambda _, rgb, w=workers: drawn[w].append(rgb))  # fmt: skip
    finally:
        torch.set_num_threads(before)
    assert len(drawn[1]) == drive.n_frames > 2
    assert all(np.array_equal(a, b) for a, b in zip(drawn[1], drawn[2], strict=True))
