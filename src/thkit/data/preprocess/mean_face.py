"""A generic adult face: the 68 iBUG landmarks in canonical head space, the start of every pose fit.

Canonical head space (see `thkit.data.layout`): origin between the ears at eye height, x to the
image's right when the subject faces the camera, y up, z out of the face; unit 1 dm. The numbers
are written by hand from average adult proportions: outer eye corners 0.9 apart, inner corners
0.32, eyes 0.29 wide and 0.09 open (eye aspect ratio 0.3, as dlib measures open eyes), nasion to
menton 1.2, nose tip 1.12 in front of the ear axis, cheek width 1.4 at the jaw's top. iBUG order
runs from the image's left, so points 0-8, 17-21 and 36-41 have negative x.

`RIGID` are the points that move little with expression: the eye corners and the nose. The pose
fit uses only these, so that speech and blinks do not rotate the head. The brows were left out:
they rise with expression, and dlib's brow points slide about 1 px per 10 degrees of yaw on a
100 px face, which cost 0.3 degrees of head rotation error on the synthetic subject (1.4 instead
of 1.1 degrees).
"""

from __future__ import annotations

import numpy as np

# fmt: off
_LEFT_HALF = {  # image-left points (x < 0) and the midline; the image-right half is mirrored below
    0: (-0.70, -0.08, 0.25), 1: (-0.69, -0.26, 0.28), 2: (-0.66, -0.44, 0.32), 3: (-0.62, -0.62, 0.38),
    4: (-0.55, -0.79, 0.47), 5: (-0.45, -0.93, 0.58), 6: (-0.33, -1.04, 0.70), 7: (-0.18, -1.12, 0.81),
    8: (0.00, -1.15, 0.86),
    17: (-0.55, 0.17, 0.60), 18: (-0.46, 0.25, 0.76), 19: (-0.35, 0.29, 0.86), 20: (-0.23, 0.29, 0.92),
    21: (-0.11, 0.26, 0.96),
    27: (0.00, 0.02, 0.93), 28: (0.00, -0.12, 0.99), 29: (0.00, -0.26, 1.05), 30: (0.00, -0.40, 1.12),
    31: (-0.16, -0.50, 0.92), 32: (-0.08, -0.52, 0.96), 33: (0.00, -0.53, 0.98),
    36: (-0.45, 0.00, 0.66), 37: (-0.36, 0.050, 0.76), 38: (-0.24, 0.055, 0.80), 39: (-0.16, 0.00, 0.80),
    40: (-0.24, -0.035, 0.79), 41: (-0.36, -0.035, 0.76),
    48: (-0.25, -0.78, 0.84), 49: (-0.15, -0.72, 0.94), 50: (-0.06, -0.685, 0.99), 51: (0.00, -0.695, 1.00),
    57: (0.00, -0.90, 0.97), 58: (-0.07, -0.89, 0.96), 59: (-0.15, -0.85, 0.93),
    60: (-0.21, -0.78, 0.86), 61: (-0.07, -0.765, 0.96), 62: (0.00, -0.765, 0.97),
    66: (0.00, -0.775, 0.97), 67: (-0.07, -0.775, 0.96),
}
# image-right point -> its image-left mirror
_MIRROR = {
    16: 0, 15: 1, 14: 2, 13: 3, 12: 4, 11: 5, 10: 6, 9: 7,
    26: 17, 25: 18, 24: 19, 23: 20, 22: 21,
    35: 31, 34: 32,
    45: 36, 44: 37, 43: 38, 42: 39, 47: 40, 46: 41,
    54: 48, 53: 49, 52: 50, 55: 59, 56: 58,
    64: 60, 63: 61, 65: 67,
}
# fmt: on

JAW = np.arange(0, 17)
BROWS = np.arange(17, 27)
NOSE = np.arange(27, 36)
LEFT_EYE = np.arange(36, 42)  # image-left: outer corner 36, upper lid 37 38, inner corner 39, lower lid 40 41
RIGHT_EYE = np.arange(42, 48)  # image-right: inner corner 42, upper lid 43 44, outer corner 45, lower lid 46 47
OUTER_LIPS = np.arange(48, 60)
INNER_LIPS = np.arange(60, 68)
EYE_CORNERS = np.array([36, 39, 42, 45])
RIGID = np.concatenate([NOSE, EYE_CORNERS])


def _build() -> np.ndarray:
    points = np.full((68, 3), np.nan)
    for index, xyz in _LEFT_HALF.items():
        points[index] = xyz
    for index, mirror in _MIRROR.items():
        x, y, z = _LEFT_HALF[mirror]
        points[index] = (-x, y, z)
    assert not np.isnan(points).any(), "every landmark must be defined"
    points.flags.writeable = False
    return points


GENERIC_FACE: np.ndarray = _build()  # [68, 3] float64, read-only
