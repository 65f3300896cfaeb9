"""The synthetic subject's head: a 2.5D textured mesh made from a real portrait, with expression bases.

The portrait is `skimage.data.astronaut()` (NASA's public-domain photo of Eileen Collins, shipped
inside scikit-image, so nothing is downloaded). From it, once, when `build_head()` runs:

- the 68 iBUG landmarks (dlib's detection on the photo, stored below, then fixed up: the inner lips
  are moved to the edges of the teeth, and the slight roll of the photo is taken out);
- a head matte: hair by colour (saturated and yellowish against the grey backdrop) joined with the
  face inside the jaw line, and cut below the jaw so the neck belongs to the torso;
- a mesh: the landmarks, points on the matte's outline and a grid inside, Delaunay-triangulated in
  the photo, except the lips: each lip is a strip of its own between its outer and inner contours,
  so nothing joins the upper lip to the lower one and the mouth opening is a hole in the mesh;
- a depth profile: each landmark has a depth (a generic face: nose tip forward, eye corners and
  jaw back), the outline lies on the ear plane, and a dome under the hair; a thin-plate spline
  through them gives every vertex its depth;
- expression bases: jaw rotation about a hinge below the ears, lip parting, rounding and spreading,
  and eyelid closure.

Head space is the dataset's canonical head space (`thkit.data.layout`): origin between the ears at
eye height, x to the image's right, y up, z out of the face, 1 unit = 1 dm, the outer eye corners
0.9 apart. In the neutral expression the lips are closed: each inner-lower-lip landmark sits on its
inner-upper-lip partner, so the mouth opening is exactly zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

# dlib 20.0 on astronaut(): HOG detector (upsampled once) and shape_predictor_68_face_landmarks
# from face_recognition_models 0.3.0, photo pixels (x right, y down, pixel centres on integers).
PHOTO_LANDMARKS = np.array(
    [
        (179, 104), (180, 116), (181, 127), (182, 139), (185, 150), (191, 160), (200, 168), (209, 176),
        (220, 178), (232, 177), (243, 171), (253, 163), (260, 154), (265, 143), (268, 131), (270, 120),
        (272, 108), (186, 94), (192, 88), (200, 87), (208, 89), (216, 92), (236, 93), (244, 91),
        (252, 91), (260, 92), (265, 99), (226, 102), (225, 111), (225, 119), (225, 127), (214, 131),
        (219, 133), (224, 134), (229, 133), (234, 132), (195, 101), (200, 98), (207, 98), (212, 104),
        (206, 104), (199, 104), (237, 106), (243, 100), (250, 100), (255, 105), (250, 107), (244, 107),
        (201, 139), (209, 139), (218, 139), (224, 141), (230, 140), (238, 140), (246, 141), (238, 151),
        (229, 155), (222, 156), (216, 155), (208, 150), (204, 141), (218, 143), (223, 144), (230, 143),
        (243, 142), (229, 150), (223, 151), (217, 150),
    ],
    dtype=np.float64,
)
# The subject smiles with her teeth showing. dlib puts the inner lips a pixel inside the teeth and
# the lower lip; these put them on the lip edges measured from the photo's colour (redness).
INNER_LIP_FIXUPS = {61: 142.5, 62: 142.5, 63: 142.5, 65: 148.7, 66: 148.7, 67: 148.7}  # landmark -> photo y

# Generic depth (dm in front of the ear plane) of each landmark in the neutral face.
LANDMARK_DEPTH = np.array(
    [0.20, 0.24, 0.30, 0.38, 0.50, 0.63, 0.76, 0.86, 0.90, 0.86, 0.76, 0.63, 0.50, 0.38, 0.30, 0.24, 0.20]  # jaw
    + [0.66, 0.79, 0.88, 0.94, 0.97, 0.97, 0.94, 0.88, 0.79, 0.66]  # brows
    + [0.93, 1.00, 1.08, 1.17, 0.96, 1.01, 1.04, 1.01, 0.96]  # nose
    + [0.70, 0.81, 0.83, 0.80, 0.80, 0.78, 0.80, 0.83, 0.81, 0.70, 0.78, 0.80]  # eyes
    + [0.84, 0.94, 0.99, 1.01, 0.99, 0.94, 0.84, 0.93, 0.97, 0.98, 0.97, 0.93]  # outer lips
    + [0.86, 0.96, 0.97, 0.96, 0.86, 0.96, 0.97, 0.96]  # inner lips
)
# How much each landmark follows the jaw (0 skull .. 1 mandible); other vertices blend these.
LANDMARK_JAW_WEIGHT = np.zeros(68)
LANDMARK_JAW_WEIGHT[2:15] = [0.05, 0.3, 0.6, 0.9, 1, 1, 1, 1, 1, 0.9, 0.6, 0.3, 0.05]
LANDMARK_JAW_WEIGHT[[48, 54, 60, 64]] = 0.45
LANDMARK_JAW_WEIGHT[[55, 59]] = 0.85
LANDMARK_JAW_WEIGHT[[56, 57, 58, 65, 66, 67]] = 1.0

EYE_CORNER_DISTANCE = 0.9  # dm between the outer eye corners (landmarks 36 and 45)
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))  # upper, lower: the mouth opening is their distance
UPPER_LIP = (49, 50, 51, 52, 53, 61, 62, 63)
LOWER_LIP = (55, 56, 57, 58, 59, 65, 66, 67)
MOUTH_CORNERS = (48, 54, 60, 64)
EYELIDS = ((37, 41), (38, 40), (43, 47), (44, 46))  # upper, lower
JAW_HINGE = np.array([-0.25, -0.05])  # (y, z) of the jaw's rotation axis (parallel to x)
JAW_MAX_DEGREES = 12.0  # jaw = 1
CROP = (110, 0, 340, 215)  # x0, y0, x1, y1 of the photo region the head lies in
GRID_STEP = 7.0  # photo px between interior mesh points
EXPRESSIONS = ("jaw", "part", "round", "spread", "close", "blink")


@dataclass(frozen=True)
class Head:
    """The textured head mesh and what moves it. Vertices 0..67 are the 68 landmarks."""

    texture: np.ndarray  # [Ht, Wt, 4] uint8 RGBA: the photo crop and the head matte
    uv: np.ndarray  # [V, 2] float32 texture pixel of each vertex (pixel centres on integers)
    texel: float  # dm of head space per texture pixel
    vertices: np.ndarray  # [V, 3] float64 neutral positions in head space
    triangles: np.ndarray  # [F, 3] int32, counter-clockwise on screen (y down) when seen from the front
    jaw_weight: np.ndarray  # [V] how much each vertex follows the jaw
    lower_lip: np.ndarray  # [V] 1 on the lower lip: the vertices that lip closure holds against the jaw
    part: np.ndarray  # [V, 3] displacement at part = 1: lips apart without the jaw
    round_shape: np.ndarray  # [V, 3] displacement at round = 1: corners in, lips forward
    round_open: np.ndarray  # [V, 3] the small opening that rounding makes (cancelled by lip closure)
    spread: np.ndarray  # [V, 3] displacement at spread = 1: corners out and up
    blink: np.ndarray  # [V, 3] displacement at blink = 1: eyelids meet
    teeth_upper: np.ndarray  # [5, 3] lower edge of the upper teeth (fixed to the skull)
    teeth_lower: np.ndarray  # [5, 3] upper edge of the lower teeth (moves with the jaw)

    def pose_vertices(self, expression: np.ndarray, first: int | None = None) -> np.ndarray:
        """[N, V, 3] vertices for [N, 6] expressions (columns as in EXPRESSIONS); only the first `first` if given."""
        keep = slice(0, first)
        jaw, part, round_, spread, close, blink = (expression[:, i, None, None] for i in range(6))
        moved = (
            self.vertices[None, keep]
            + part * (1 - close) * self.part[None, keep]
            + round_ * self.round_shape[None, keep]
            + round_ * (1 - close) * self.round_open[None, keep]
            + spread * self.spread[None, keep]
            + blink * self.blink[None, keep]
        )
        weight = self.jaw_weight[None, keep, None] * (1 - close * self.lower_lip[None, keep, None])
        return _rotate_jaw(moved, jaw[:, 0, 0], weight)

    def teeth(self, jaw: float) -> tuple[np.ndarray, np.ndarray]:
        """Upper and lower teeth edges in head space for one jaw opening."""
        lower = _rotate_jaw(self.teeth_lower[None], np.array([jaw]), np.ones((1, 5, 1)))[0]
        return self.teeth_upper, lower


def mouth_opening(landmarks3d: np.ndarray) -> np.ndarray:
    """[N] inner-lip opening divided by the face's height (landmark 27 to 8), as the layout defines."""
    gaps = np.stack([np.linalg.norm(landmarks3d[:, a] - landmarks3d[:, b], axis=-1) for a, b in INNER_LIP_PAIRS])
    height = np.linalg.norm(landmarks3d[:, 27] - landmarks3d[:, 8], axis=-1)
    return gaps.mean(axis=0) / height


def _rotate_jaw(points: np.ndarray, jaw: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Rotate [N, V, 3] points about the jaw hinge by jaw * JAW_MAX_DEGREES, blended by weight [N|1, V, 1]."""
    angle = np.radians(JAW_MAX_DEGREES) * jaw[:, None]  # [N, 1]
    y = points[..., 1] - JAW_HINGE[0]
    z = points[..., 2] - JAW_HINGE[1]
    cos, sin = np.cos(angle), np.sin(angle)
    dy = y * cos - z * sin - y
    dz = y * sin + z * cos - z
    out = points.copy()
    out[..., 1] += weight[..., 0] * dy
    out[..., 2] += weight[..., 0] * dz
    return out


def photo() -> np.ndarray:
    """The portrait, [512, 512, 3] uint8 RGB: what `skimage.data.astronaut()` returns, read directly.

    (Importing skimage.data pulls in skimage.io, which takes most of a second.)
    """
    import importlib.util

    from PIL import Image

    spec = importlib.util.find_spec("skimage")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "astronaut.png"
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def texture_landmarks() -> np.ndarray:
    """[68, 2] photo pixels of the landmarks after the inner-lip fix-ups."""
    points = PHOTO_LANDMARKS.copy()
    for index, y in INNER_LIP_FIXUPS.items():
        points[index, 1] = y
    return points


def head_matte(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """[H, W] uint8 0/1: hair and face, above the jaw line."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
    hair = ((hsv[..., 1] > 50) & (lab[..., 2] > 137)).astype(np.uint8)
    face = np.zeros_like(hair)
    cv2.fillPoly(face, [np.round(np.concatenate([landmarks[0:17], landmarks[26:16:-1]])).astype(np.int32)], 1)
    matte = hair | face
    # Everything below the jaw line (a smooth curve through the jaw landmarks, extended down to the
    # sides) is neck, collar or suit.
    from scipy.interpolate import CubicSpline

    jaw = landmarks[3:14]
    arc = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(jaw, axis=0), axis=1))])
    jaw_line = CubicSpline(arc, jaw)(np.linspace(0, arc[-1], 8 * len(jaw)))
    height, width = matte.shape
    below = np.concatenate([[(0, 190)], jaw_line, [(width - 1, 190), (width - 1, height - 1), (0, height - 1)]])
    cv2.fillPoly(matte, [np.round(below * 16).astype(np.int32)], 0, shift=4)
    matte = cv2.morphologyEx(matte, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    matte = cv2.morphologyEx(matte, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    _, labels = cv2.connectedComponents(matte)
    centre = np.round(landmarks[30]).astype(int)
    matte = (labels == labels[centre[1], centre[0]]).astype(np.uint8)
    contours, _ = cv2.findContours(matte, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros_like(matte)
    cv2.drawContours(filled, contours, -1, 1, thickness=-1)  # fill holes
    return filled


@lru_cache(maxsize=1)
def build_head() -> Head:
    """Build the head from the portrait (under a second, mostly imports; deterministic, so kept)."""
    image = photo()
    landmarks = texture_landmarks()
    matte = head_matte(image, landmarks)
    x0, y0, x1, y1 = CROP
    offset = np.array([x0, y0], dtype=np.float64)

    # Texture: colours pushed outwards beyond the matte so that bilinear sampling at the edge never
    # mixes in the backdrop; alpha is the matte, softened by a fraction of a pixel.
    crop = image[y0:y1, x0:x1].astype(np.float32)
    crop_matte = matte[y0:y1, x0:x1].astype(np.float32)
    weight = cv2.GaussianBlur(crop_matte, (0, 0), 4.0)
    spread_colour = cv2.GaussianBlur(crop * crop_matte[..., None], (0, 0), 4.0) / np.maximum(weight, 1e-6)[..., None]
    rgb = np.where(crop_matte[..., None] > 0, crop, spread_colour)
    alpha = cv2.GaussianBlur(crop_matte, (0, 0), 0.7)
    texture = np.dstack([np.clip(rgb, 0, 255), alpha * 255]).round().astype(np.uint8)

    # Mesh points in photo pixels: landmarks, outline of the slightly grown matte, interior grid.
    grown = cv2.dilate(matte, np.ones((7, 7), np.uint8))
    contours = cv2.findContours(grown, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)[0]
    contour = max(contours, key=cv2.contourArea)[:, 0].astype(np.float64)
    steps = np.linalg.norm(np.diff(contour, axis=0, append=contour[:1]), axis=1)
    arc = np.concatenate([[0], np.cumsum(steps)])
    samples = np.arange(0, arc[-1], GRID_STEP)
    outline = np.stack([np.interp(samples, arc, np.append(contour[:, i], contour[0, i])) for i in (0, 1)], axis=1)
    keep_out = np.zeros_like(matte)
    for polygon in (landmarks[36:42], landmarks[42:48], landmarks[48:60]):
        cv2.fillPoly(keep_out, [np.round(polygon).astype(np.int32)], 1)
    keep_out = cv2.dilate(keep_out, np.ones((5, 5), np.uint8))
    gy, gx = np.mgrid[0 : matte.shape[0] : GRID_STEP, 0 : matte.shape[1] : GRID_STEP]
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1) + GRID_STEP / 2
    gi = np.round(grid).astype(int).clip(0, matte.shape[0] - 1)
    grid = grid[(grown[gi[:, 1], gi[:, 0]] > 0) & (keep_out[gi[:, 1], gi[:, 0]] == 0)]
    near = np.min(np.linalg.norm(grid[:, None] - np.concatenate([landmarks, outline])[None], axis=-1), axis=1)
    grid = grid[near > GRID_STEP * 0.55]
    points = np.concatenate([landmarks, outline, grid])
    points, helpers, triangles = _triangulate(points, grown)

    to_head = _head_transform(landmarks)
    xy = to_head(points)
    for upper, lower in INNER_LIP_PAIRS:  # close the mouth: lower inner lip onto the upper one
        middle = (xy[upper] + xy[lower]) / 2
        xy[upper] = xy[lower] = middle
    depth = _depth(xy, points, matte, landmarks, to_head)
    jaw_weight = _blend_from_landmarks(xy, LANDMARK_JAW_WEIGHT, sigma=0.12)
    jaw_weight[:68] = LANDMARK_JAW_WEIGHT
    lower_lip = np.zeros(len(points))
    lower_lip[list(LOWER_LIP)] = 1.0
    for new, a, b in helpers:  # points added on the lip contour move as the middle of their ends
        for array in (xy, depth, jaw_weight, lower_lip):
            array[new] = (array[a] + array[b]) / 2
    vertices = np.column_stack([xy, depth])

    seam = vertices[[60, 61, 62, 63, 64]]
    mouth_centre = vertices[48:68, 0].mean()
    teeth_upper = seam + np.array([0.0, -0.045, -0.03])
    teeth_upper[:, 0] = mouth_centre + (teeth_upper[:, 0] - mouth_centre) * 0.85
    teeth_lower = seam + np.array([0.0, -0.035, -0.05])
    teeth_lower[:, 0] = teeth_upper[:, 0]
    bases = {
        "part": _part_basis(len(points)),
        "round_shape": _round_basis(vertices, mouth_centre),
        "round_open": _round_open_basis(len(points)),
        "spread": _spread_basis(vertices, mouth_centre),
        "blink": _blink_basis(vertices),
    }
    for new, a, b in helpers:
        for basis in bases.values():
            basis[new] = (basis[a] + basis[b]) / 2
    head = Head(
        texture=texture,
        texel=EYE_CORNER_DISTANCE / float(np.linalg.norm(landmarks[45] - landmarks[36])),
        uv=(points - offset).astype(np.float32),
        vertices=vertices,
        triangles=triangles,
        jaw_weight=jaw_weight,
        lower_lip=lower_lip,
        teeth_upper=teeth_upper,
        teeth_lower=teeth_lower,
        **bases,
    )
    for value in vars(head).values():
        if isinstance(value, np.ndarray):
            value.setflags(write=False)  # shared by every caller of this cached function
    return head


def _triangulate(points: np.ndarray, region: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int]], np.ndarray]:
    """Triangles over `points` (photo px) inside `region`, with the lips as two strips around a hole.

    Outside the lips: Delaunay, made to conform to the outer lip contour by adding its midpoints
    where an edge of the contour is missing (returned as helpers: (new, a, b) = middle of a and b).
    The lips: each a strip zipped between its outer and inner contours. The inner contour bounds
    the hole that the mouth interior shows through.
    """
    from scipy.spatial import Delaunay

    loop = list(range(48, 60))
    helpers: list[tuple[int, int, int]] = []
    outside = [i for i in range(len(points)) if not 60 <= i < 68]
    for _ in range(8):
        simplices = np.array(outside)[Delaunay(points[outside]).simplices]
        edges = {frozenset(pair) for t in simplices for pair in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0]))}
        missing = [(a, b) for a, b in zip(loop, loop[1:] + loop[:1]) if frozenset((a, b)) not in edges]
        if not missing:
            break
        for a, b in missing:
            new = len(points)
            points = np.vstack([points, (points[a] + points[b]) / 2])
            helpers.append((new, a, b))
            outside.append(new)
            loop.insert(loop.index(a) + 1, new)
    else:
        raise RuntimeError("could not make the head mesh follow the outer lip contour")
    centroids = points[simplices].mean(axis=1)
    ci = np.round(centroids).astype(int)
    lip_polygon = points[loop].astype(np.float32)
    in_lips = np.array([cv2.pointPolygonTest(lip_polygon, (float(x), float(y)), False) >= 0 for x, y in centroids])
    simplices = simplices[(region[ci[:, 1], ci[:, 0]] > 0) & ~in_lips]
    corner = loop.index(54)
    upper = _zip(points, loop[: corner + 1], [60, 61, 62, 63, 64])
    lower = _zip(points, loop[corner:] + [48], [64, 65, 66, 67, 60])
    triangles = _orient(points, np.concatenate([simplices, upper, lower]).astype(np.int32))
    _check_lips_apart(triangles)
    return points, helpers, triangles


def _zip(points: np.ndarray, outer: list[int], inner: list[int]) -> np.ndarray:
    """A strip of triangles between two chains that start and end side by side."""

    def arc(chain: list[int]) -> np.ndarray:
        length = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(points[chain], axis=0), axis=1))])
        return length / length[-1]

    po, pi = arc(outer), arc(inner)
    i = j = 0
    triangles = []
    while i < len(outer) - 1 or j < len(inner) - 1:
        if j == len(inner) - 1 or (i < len(outer) - 1 and po[i + 1] <= pi[j + 1]):
            triangles.append((outer[i], outer[i + 1], inner[j]))
            i += 1
        else:
            triangles.append((outer[i], inner[j + 1], inner[j]))
            j += 1
    return np.array(triangles)


def _orient(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    a, b, c = (points[triangles[:, i]] for i in range(3))
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    flipped = area < 0
    triangles = triangles.copy()
    triangles[flipped] = triangles[flipped][:, [0, 2, 1]]
    return triangles


def _check_lips_apart(triangles: np.ndarray) -> None:
    """No triangle may join the upper lip to the lower one: the mouth could not open."""
    upper = np.isin(triangles, UPPER_LIP).any(axis=1)
    lower = np.isin(triangles, LOWER_LIP).any(axis=1)
    if np.any(upper & lower):
        raise RuntimeError(f"head mesh joins the lips: triangles {triangles[upper & lower].tolist()}")


def _head_transform(landmarks: np.ndarray):
    """Photo pixels -> head space: scale from the eye corners, origin at eye height between them, roll removed."""
    eye_axis = landmarks[45] - landmarks[36]
    scale = EYE_CORNER_DISTANCE / np.linalg.norm(eye_axis)
    roll = np.arctan2(eye_axis[1], eye_axis[0])
    origin = np.array([landmarks[[36, 45], 0].mean(), landmarks[36:48, 1].mean()])
    cos, sin = np.cos(roll), np.sin(roll)

    def to_head(points: np.ndarray) -> np.ndarray:
        centred = points - origin
        level = np.stack([cos * centred[:, 0] + sin * centred[:, 1], -sin * centred[:, 0] + cos * centred[:, 1]], axis=1)
        return level * np.array([scale, -scale])  # image y down -> head y up

    return to_head


def _depth(xy: np.ndarray, points: np.ndarray, matte: np.ndarray, landmarks: np.ndarray, to_head) -> np.ndarray:
    """Depth of every vertex: a thin-plate spline through the landmarks, the outline and a hair dome."""
    from scipy.interpolate import RBFInterpolator

    # Outline vertices away from the jaw line lie on the ear plane; the dome under the hair rises
    # from them like a sphere (depth 0.9 sqrt(1 - r^2) along rays from the top of the nose).
    outside = cv2.distanceTransform((1 - matte).astype(np.uint8), cv2.DIST_L2, 3)
    pi = np.round(points).astype(int)
    is_outline = outside[pi[:, 1], pi[:, 0]] > 0
    is_outline[:68] = False
    jaw_line = np.min(np.linalg.norm(points[:, None] - landmarks[None, 2:15], axis=-1), axis=1)
    rim = points[is_outline & (jaw_line > 12)]
    face = cv2.convexHull(np.round(landmarks[:27]).astype(np.float32))
    known_xy, known_z = [xy[:68], to_head(rim)], [LANDMARK_DEPTH, np.zeros(len(rim))]
    for fraction in (0.55, 0.8):
        inner = landmarks[27] + (rim - landmarks[27]) * fraction
        clear = np.array([cv2.pointPolygonTest(face, (float(x), float(y)), True) < -6 for x, y in inner])
        known_xy.append(to_head(inner[clear]))
        known_z.append(np.full(clear.sum(), 0.9 * np.sqrt(1 - fraction**2)))
    spline = RBFInterpolator(np.concatenate(known_xy), np.concatenate(known_z), kernel="thin_plate_spline", smoothing=1e-4)
    depth = spline(xy)
    depth[:68] = LANDMARK_DEPTH
    return np.maximum(depth, -0.2)


def _blend_from_landmarks(xy: np.ndarray, values: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-weighted landmark values at every vertex, fading to 0 far from all landmarks."""
    d2 = np.sum((xy[:, None] - xy[None, :68]) ** 2, axis=-1)
    g = np.exp(-d2 / (2 * sigma**2))
    return (g @ values) / (g.sum(axis=1) + np.exp(-2.0))


def _part_basis(count: int) -> np.ndarray:
    basis = np.zeros((count, 3))
    basis[[61, 62, 63], 1] = [0.03, 0.035, 0.03]
    basis[[50, 51, 52], 1] = 0.012
    basis[[49, 53], 1] = 0.006
    basis[[65, 66, 67], 1] = [-0.04, -0.045, -0.04]
    basis[[56, 57, 58], 1] = -0.02
    basis[[55, 59], 1] = -0.01
    return basis


def _round_basis(vertices: np.ndarray, mouth_centre: float) -> np.ndarray:
    basis = np.zeros_like(vertices)
    lips = np.arange(48, 68)
    pull = np.where(np.isin(lips, MOUTH_CORNERS), 0.3, 0.15)
    basis[lips, 0] = -(vertices[lips, 0] - mouth_centre) * pull
    basis[lips, 2] = 0.06
    return basis


def _round_open_basis(count: int) -> np.ndarray:
    basis = np.zeros((count, 3))
    basis[[61, 62, 63], 1] = 0.012
    basis[[65, 66, 67], 1] = -0.016
    return basis


def _spread_basis(vertices: np.ndarray, mouth_centre: float) -> np.ndarray:
    basis = np.zeros_like(vertices)
    lips = np.arange(48, 68)
    push = np.where(np.isin(lips, MOUTH_CORNERS), 0.12, 0.05)
    basis[lips, 0] = (vertices[lips, 0] - mouth_centre) * push
    basis[list(MOUTH_CORNERS), 1] = 0.012
    basis[lips, 2] = -0.02
    return basis


def _blink_basis(vertices: np.ndarray) -> np.ndarray:
    basis = np.zeros_like(vertices)
    for upper, lower in EYELIDS:
        meet = vertices[lower] + 0.25 * (vertices[upper] - vertices[lower])
        basis[upper] = meet - vertices[upper]
        basis[lower] = meet - vertices[lower]
    return basis
