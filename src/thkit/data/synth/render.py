"""Rendering the subject: a pinhole camera, a vectorised triangle rasteriser, and the compositor.

Image coordinates are continuous with the image's top-left corner at (0, 0): pixel (row i, column j)
covers [j, j+1) x [i, i+1) and is sampled at its centre (j + 1/2, i + 1/2), as nerfstudio's cameras
do. Landmarks in the dataset use the same coordinates (OpenCV and dlib put pixel centres on
integers instead, 1/2 px less).

The rasteriser enumerates every pixel centre in every triangle's bounding box at once with numpy,
keeps those inside, and resolves visibility with a depth buffer (`np.minimum.at`); then one
cv2.remap samples the texture at the winners' interpolated texture coordinates. Screen-space (affine) interpolation
is used: at this camera's narrow field of view the perspective correction is under 0.01 px.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from thkit.data.synth.portrait import Head

FOCAL_PER_PIXEL = 3.0  # focal length in units of the image size: a 19 degree field of view
DISTANCE = 12.0  # dm from the camera to the head's origin
HEAD_ROW = 0.38  # the head origin (eye height) projects to this fraction of the image height
MOUTH = (60, 61, 62, 63, 64, 65, 66, 67)  # inner lip contour, in order: the hole in the mesh

CAVITY = np.array([52.0, 18.0, 24.0])
TONGUE = np.array([150.0, 62.0, 70.0])
TEETH = np.array([232.0, 226.0, 210.0])


@dataclass(frozen=True)
class Camera:
    size: int
    focal: float
    cx: float
    cy: float
    rest: np.ndarray  # [3] head origin in camera coordinates (OpenGL: x right, y up, looking along -z)

    @classmethod
    def for_size(cls, size: int) -> Camera:
        focal = FOCAL_PER_PIXEL * size
        rest_y = (0.5 - HEAD_ROW) * size * DISTANCE / focal
        return cls(size=size, focal=focal, cx=size / 2, cy=size / 2, rest=np.array([0.0, rest_y, -DISTANCE]))

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Camera-space [..., 3] points -> image [..., 2] and depth [...] (distance along the view axis)."""
        depth = -points[..., 2]
        x = self.cx + self.focal * points[..., 0] / depth
        y = self.cy - self.focal * points[..., 1] / depth
        return np.stack([x, y], axis=-1), depth


def camera_to_world(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """[N, 4, 4] camera-to-world poses in head space for head-to-camera rotations and translations."""
    pose = np.zeros((len(rotation), 4, 4))
    pose[:, :3, :3] = np.transpose(rotation, (0, 2, 1))
    pose[:, :3, 3] = -np.einsum("nji,nj->ni", rotation, translation)
    pose[:, 3, 3] = 1.0
    return pose


@dataclass(frozen=True)
class Coverage:
    pixel: np.ndarray  # [M] flat index of each covered pixel
    triangle: np.ndarray  # [M] the visible triangle there
    bary: np.ndarray  # [M, 3] barycentric coordinates of the pixel centre in it


def rasterize(xy: np.ndarray, depth: np.ndarray, triangles: np.ndarray, width: int, height: int) -> Coverage:
    """Visible triangle and barycentrics at every covered pixel centre.

    Both sides of a triangle are drawn: where expressions fold a thin triangle over (a mouth corner
    with the jaw open), the fold shows instead of a hole.
    """
    corners = xy[triangles]  # [F, 3, 2]
    e1 = corners[:, 1] - corners[:, 0]
    e2 = corners[:, 2] - corners[:, 0]
    area = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    lo = np.maximum(np.ceil(corners.min(axis=1) - 0.5), 0).astype(np.int32)
    hi = np.minimum(np.floor(corners.max(axis=1) - 0.5), [width - 1, height - 1]).astype(np.int32)
    spans = hi - lo + 1
    faces = np.flatnonzero((np.abs(area) > 1e-9) & (spans > 0).all(axis=1))
    # b1, b2 (barycentrics of corners 1 and 2) and depth are affine in the pixel: a*px + b*py + c.
    inv = 1.0 / area[faces]
    x0, y0 = corners[faces, 0, 0], corners[faces, 0, 1]
    b1x, b1y = e2[faces, 1] * inv, -e2[faces, 0] * inv
    b2x, b2y = -e1[faces, 1] * inv, e1[faces, 0] * inv
    z = depth[triangles[faces]]
    dz1, dz2 = z[:, 1] - z[:, 0], z[:, 2] - z[:, 0]
    zx, zy = dz1 * b1x + dz2 * b2x, dz1 * b1y + dz2 * b2y
    lx, ly = lo[faces, 0], lo[faces, 1]
    ox, oy = lx + 0.5 - x0, ly + 0.5 - y0  # offset of each box's first pixel centre from corner 0
    coefficients = np.stack(
        [b1x, b1y, b1x * ox + b1y * oy, b2x, b2y, b2x * ox + b2y * oy, zx, zy, z[:, 0] + zx * ox + zy * oy], axis=1
    ).astype(np.float32)
    w, h = spans[faces, 0], spans[faces, 1]
    counts = w * h
    owner = np.repeat(np.arange(len(faces), dtype=np.int32), counts)
    local = np.arange(int(counts.sum()), dtype=np.int32) - np.repeat((np.cumsum(counts) - counts).astype(np.int32), counts)
    row = w[owner]
    dy = local // row
    dx = local - dy * row
    c = coefficients[owner]
    fx, fy = dx.astype(np.float32), dy.astype(np.float32)
    b1 = c[:, 0] * fx + c[:, 1] * fy + c[:, 2]
    b2 = c[:, 3] * fx + c[:, 4] * fy + c[:, 5]
    inside = np.flatnonzero((b1 >= -1e-5) & (b2 >= -1e-5) & (b1 + b2 <= 1 + 1e-5))
    owner, b1, b2, c, fx, fy = owner[inside], b1[inside], b2[inside], c[inside], fx[inside], fy[inside]
    zs = c[:, 6] * fx + c[:, 7] * fy + c[:, 8]
    pixel = (ly[owner] + dy[inside]) * width + lx[owner] + dx[inside]
    # Depth test: the nearest candidate of each pixel wins (the last one written, among equals).
    nearest = np.full(width * height, np.inf, np.float32)
    np.minimum.at(nearest, pixel, zs)
    won = np.flatnonzero(zs <= nearest[pixel])
    winner = np.full(width * height, -1, np.int64)
    winner[pixel[won]] = won
    won = winner[winner >= 0]
    return Coverage(
        pixel=pixel[won], triangle=faces[owner[won]], bary=np.stack([1 - b1[won] - b2[won], b1[won], b2[won]], axis=1)
    )


class Scene:
    """Everything static in the picture (background, torso, camera, head mesh) and the per-frame render."""

    def __init__(self, head: Head, size: int) -> None:
        self.head = head
        self.size = size
        self.camera = Camera.for_size(size)
        self.background = _backdrop(size)
        self.margin = max(8, size // 8)
        self.torso = _torso(self.camera, self.margin)  # [S + 2m, S + 2m, 4] premultiplied, alpha in 0..1
        # Small images shrink the photo: prefilter it, as bilinear sampling alone would alias.
        self.texture_scale = min(1.0, 1.5 * self.camera.focal / DISTANCE * head.texel)
        self.texture = head.texture
        if self.texture_scale < 1.0:
            height, width = head.texture.shape[:2]
            shrunk = (round(width * self.texture_scale), round(height * self.texture_scale))
            self.texture = cv2.resize(head.texture, shrunk, interpolation=cv2.INTER_AREA)

    def render(
        self, vertices: np.ndarray, rotation: np.ndarray, translation: np.ndarray, jaw: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """RGB [S, S, 3] uint8 and labels [S, S] uint8 for head-space vertices under one pose.

        `translation` is the head origin in camera space; the torso follows its offset from rest.
        """
        size, camera, head = self.size, self.camera, self.head
        xy, depth = camera.project(vertices @ rotation.T + translation)
        cover = rasterize(xy, depth, head.triangles, size, size)
        corners = head.uv[head.triangles[cover.triangle]]  # [M, 3, 2]
        bary = cover.bary[:, :, None]
        uv = bary[:, 0] * corners[:, 0] + bary[:, 1] * corners[:, 1] + bary[:, 2] * corners[:, 2]
        if self.texture_scale < 1.0:
            uv = (uv + 0.5) * self.texture_scale - 0.5  # pixel centres on integers in both textures
        sampled = _sample(self.texture, uv).astype(np.float32)

        frame, labels = self._body(translation)
        alpha = sampled[:, 3:] / 255.0
        under = frame[cover.pixel]
        frame[cover.pixel] = under + alpha * (sampled[:, :3] - under)
        labels[cover.pixel[alpha[:, 0] >= 0.5]] = 2
        covered = np.zeros(size * size, bool)
        covered[cover.pixel] = True
        hole, paint = self._mouth(covered, xy, rotation, translation, jaw)
        frame[hole] = paint
        labels[hole] = 2
        return (frame + 0.5).astype(np.uint8).reshape(size, size, 3), labels.reshape(size, size)

    def _body(self, translation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Backdrop with the torso moved by the head's translation: [S*S, 3] float32 and labels [S*S]."""
        size, camera = self.size, self.camera
        shift = (translation - camera.rest)[:2] * np.array([1.0, -1.0]) * camera.focal / DISTANCE
        move = np.float32([[1, 0, self.margin - shift[0]], [0, 1, self.margin - shift[1]]])
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        torso = cv2.warpAffine(self.torso, move, (size, size), flags=flags, borderMode=cv2.BORDER_REPLICATE).reshape(-1, 4)
        alpha = torso[:, 3:]
        frame = self.background * (1 - alpha) + torso[:, :3]  # the torso is premultiplied
        return frame, (alpha[:, 0] >= 0.5).astype(np.uint8)

    def _mouth(
        self, covered: np.ndarray, xy: np.ndarray, rotation: np.ndarray, translation: np.ndarray, jaw: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Pixels of the hole between the lips and their colours: cavity, tongue, teeth of both jaws."""
        nothing = np.zeros(0, np.int64), np.zeros((0, 3), np.float32)
        size = self.size
        lips = xy[list(MOUTH)]
        x0, y0 = np.floor(lips.min(axis=0)).astype(int) - 2
        x1, y1 = np.ceil(lips.max(axis=0)).astype(int) + 2
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, size), min(y1, size)
        if x1 <= x0 or y1 <= y0:
            return nothing
        box = np.zeros((y1 - y0, x1 - x0), np.uint8)
        polygon = np.round((lips - [x0 + 0.5, y0 + 0.5]) * 16).astype(np.int32)  # pixel centres, 4 subpixel bits
        cv2.fillPoly(box, [polygon], 1, lineType=cv2.LINE_8, shift=4)
        cv2.polylines(box, [polygon], True, 1, thickness=1, lineType=cv2.LINE_8, shift=4)
        by, bx = np.nonzero(box)
        pixel = (by + y0) * size + (bx + x0)
        pixel = pixel[~covered[pixel]]
        if len(pixel) == 0:
            return nothing
        px = pixel % size + 0.5
        py = pixel // size + 0.5
        upper, lower = self.head.teeth(jaw)
        upper_xy, _ = self.camera.project(upper @ rotation.T + translation)
        lower_xy, _ = self.camera.project(lower @ rotation.T + translation)
        left, right = lips[0, 0], lips[4, 0]
        across = np.clip((px - (left + right) / 2) / max((right - left) / 2, 1e-6), -1, 1)
        shade = 1 - 0.55 * across**2
        upper_edge = np.interp(px, upper_xy[:, 0], upper_xy[:, 1])
        lower_edge = np.interp(px, lower_xy[:, 0], lower_xy[:, 1])
        tongue_top = lower_edge - (lower_edge - upper_edge).clip(0) * 0.25 * (1 - across**2)
        depth_shade = np.clip((py - upper_edge) / np.maximum(lower_edge - upper_edge, 1.0), 0, 1)
        paint = CAVITY * (0.6 + 0.4 * depth_shade[:, None])
        paint = np.where((py > tongue_top)[:, None], TONGUE * shade[:, None], paint)
        paint = np.where((py > lower_edge)[:, None], TEETH * 0.85 * shade[:, None], paint)
        paint = np.where((py < upper_edge)[:, None], TEETH * shade[:, None], paint)
        return pixel, paint.astype(np.float32)


def _sample(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear texture samples [M, C] at [M, 2] texture pixels (cv2.remap, maps folded into rows)."""
    width = 4096  # remap needs maps narrower than 32767
    rows = -(-len(uv) // width)
    maps = np.full((rows * width, 2), -1.0, np.float32)
    maps[: len(uv)] = uv
    maps = maps.reshape(rows, width, 2)
    out = cv2.remap(texture, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return out.reshape(rows * width, -1)[: len(uv)]


def _backdrop(size: int) -> np.ndarray:
    """A static mottled grey studio backdrop, [S*S, 3] float32 in 0..255 (the same for every seed)."""
    rng = np.random.default_rng(20240611)
    y, x = np.mgrid[0:size, 0:size] / size
    glow = np.exp(-((x - 0.45) ** 2 + (y - 0.35) ** 2) / 0.18)
    base = np.array([150.0, 148.0, 158.0]) + glow[..., None] * np.array([48.0, 46.0, 46.0])
    mottle = np.zeros((size, size), np.float32)
    for cells, amount in ((5, 9.0), (17, 3.0)):
        coarse = rng.normal(size=(cells, cells)).astype(np.float32)
        mottle += amount * cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(base + mottle[..., None], 0, 255).astype(np.float32).reshape(-1, 3)


def _torso(camera: Camera, margin: int) -> np.ndarray:
    """Neck in a dark turtleneck, the metal ring of a suit collar and orange shoulders: premultiplied RGBA float32.

    Drawn once, supersampled and reduced (antialiased edges), on a canvas `margin` px larger on
    every side so that it can follow the head's translation.
    """
    scale = max(1, min(4, 1024 // camera.size))
    size = camera.size + 2 * margin
    big = size * scale
    rgb = np.zeros((big, big, 3), np.float32)
    cover = np.zeros((big, big), np.float32)
    px_per_dm = camera.focal / DISTANCE
    rows, cols = np.mgrid[0:big, 0:big].astype(np.float32) / scale
    xs = (cols - camera.cx - margin) / px_per_dm  # head space at rest, dm
    ys = (camera.cy + margin - rows) / px_per_dm - camera.rest[1]

    def fill(points: list[tuple[float, float]], colour: tuple[float, float, float], shade) -> None:
        u = np.array([camera.cx + margin + x * px_per_dm for x, _ in points]) * scale
        v = np.array([camera.cy + margin - (camera.rest[1] + y) * px_per_dm for _, y in points]) * scale
        layer = np.zeros((big, big), np.uint8)
        cv2.fillPoly(layer, [np.round(np.stack([u, v], axis=1)).astype(np.int32)], 1)
        mask = layer.astype(bool)
        rgb[mask] = np.array(colour, np.float32) * np.clip(shade(xs[mask], ys[mask]), 0, 1)[:, None]
        cover[mask] = 1.0

    def ellipse(cx: float, cy: float, rx: float, ry: float, start: float, stop: float) -> list[tuple[float, float]]:
        angles = np.radians(np.linspace(start, stop, 48))
        return [(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in angles]

    def neck_shade(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """A cylinder lit from the front, in the chin's shadow at the top."""
        return (0.55 + 0.45 * np.sqrt(np.clip(1 - (x / 0.5) ** 2, 0, 1))) * (1 - 0.4 * np.clip((y + 1.1) / 0.6, 0, 1))

    collar = -1.6  # height of the suit's neck ring
    shoulders = [(-4.0, -4.5)] + [(x, collar - 0.05 - 0.16 * x * x) for x in np.linspace(-3.0, 3.0, 41)] + [(4.0, -4.5)]
    fill(shoulders, (214, 100, 44), lambda x, y: 1 - 0.1 * np.abs(x) - 0.08 * np.clip(-2.6 - y, 0, 2))
    fill(ellipse(0, collar, 0.95, 0.28, 0, 360), (24, 24, 30), lambda x, y: np.ones_like(x))  # the ring's opening
    fill([(-0.45, -0.3), (0.45, -0.3), (0.5, collar - 0.05), (-0.5, collar - 0.05)], (44, 43, 52), neck_shade)
    ring_front = ellipse(0, collar, 1.02, 0.34, 180, 360) + ellipse(0, collar, 0.88, 0.24, 360, 180)
    fill(ring_front, (120, 124, 146), lambda x, y: 0.7 + 0.3 * np.cos(np.clip(x, -1, 1) * 1.4 + 0.5))
    return cv2.resize(np.dstack([rgb * cover[..., None], cover]), (size, size), interpolation=cv2.INTER_AREA)
