"""Rendering: from a trained run and new audio to frames; `thkit.render.nerf` holds the NeRF building blocks.

`render_run(run, out, audio_path=... | text=...)` writes an mp4 of the run saying the audio
(`thkit.render.pipeline`); `thkit.render.drive` chooses poses and blinks for new audio,
`thkit.render.video` writes H.264 + AAC in sync. Importing this package imports no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from thkit.render.pipeline import load_run, render_run

__all__ = ["load_run", "render_run"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from thkit.render import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'thkit.render' has no attribute '{name}'")
