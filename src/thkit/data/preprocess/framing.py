"""One square crop for the whole clip, from robust statistics of the per-frame face boxes.

A per-frame crop would move the background and fold head motion into the camera; the NeRF
renderers need a static camera. The crop is centred on the middle of the face's range of positions,
shifted down so the shoulders are in frame, and sized from a high percentile of the face size plus the spread of
the face's positions (5th to 95th percentile), so that the head with its hair stays inside while
the subject moves. It is clamped to the frame; a frame too small gives the largest square there is.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

HEAD_MARGIN = 2.8  # crop side in face-box sizes: room for hair above and shoulders below
DOWN_SHIFT = 0.3  # crop centre below the face centre, in face-box sizes


@dataclass(frozen=True)
class Crop:
    """A square window of the upright source frame, resized to `size` x `size`."""

    x0: int
    y0: int
    side: int
    size: int

    @property
    def scale(self) -> float:
        return self.size / self.side

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        window = rgb[self.y0 : self.y0 + self.side, self.x0 : self.x0 + self.side]
        if self.side == self.size:
            return np.ascontiguousarray(window)
        interpolation = cv2.INTER_AREA if self.side > self.size else cv2.INTER_CUBIC
        return cv2.resize(window, (self.size, self.size), interpolation=interpolation)

    def to_output(self, xy: np.ndarray) -> np.ndarray:
        """Map source image coordinates into the output's (continuous: pixel centres at +1/2, as in the layout)."""
        return (np.asarray(xy, dtype=np.float64) - np.array([self.x0, self.y0])) * self.scale

    def as_dict(self) -> dict[str, int]:
        return {"x0": self.x0, "y0": self.y0, "side": self.side, "size": self.size}


def choose_crop(boxes: np.ndarray, width: int, height: int, size: int) -> Crop:
    """The crop for face boxes [M, 4] (x0, y0, x1, y1, source pixels) seen in a width x height video."""
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    extent = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    face = float(np.percentile(extent, 90))
    low, high = np.percentile(centres, 5, axis=0), np.percentile(centres, 95, axis=0)
    travel = float(np.max(high - low))
    side = int(round(HEAD_MARGIN * face + travel))
    side = max(min(side, width, height), 16)
    centre_x, centre_y = (low + high) / 2 + np.array([0.0, DOWN_SHIFT * face])
    x0 = int(round(np.clip(centre_x - side / 2, 0, width - side)))
    y0 = int(round(np.clip(centre_y - side / 2, 0, height - side)))
    return Crop(x0, y0, side, size)
