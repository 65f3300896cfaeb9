"""Head pose: one rigid 3D face fitted to the stable landmarks of every frame at once.

The model: the subject's face is a fixed set of 3D points S in canonical head space (dm). In frame
i the camera sees them at X = R_i S + t_i, in OpenGL camera axes (x right, y up, looking along -z),
and a pinhole with one focal length f for the whole clip projects them to pixels:
u = cx + f X / -Z, v = cy - f Y / -Z. Only the landmarks that move little with expression (eye
corners and nose: `mean_face.RIGID`) enter the fit, so speech and blinks do not turn the head.

`fit_head` solves for S, every R_i and t_i, and f jointly by non-linear least squares
(scipy.optimize.least_squares, trust-region with LSMR). The unknowns start from the generic face
and a per-frame PnP. A landmark's residual depends on only 10 unknowns (f, its own point's 3
coordinates, its frame's 6), so the Jacobian is given to the solver as a sparse matrix, computed
analytically: 10 non-zeros per row, whatever the clip's length, and 4500 frames fit in about half
a minute. Landmarks that stay off (a tracking slip) are down-weighted by soft-L1 weights over two
re-weighted solves. Weak priors pull S towards the generic face and f towards the start value;
they fix what landmarks cannot (the face's absolute size against its distance, the focal length
against the distance, and the face's orientation against the camera's), and let the data decide
everything else. The focal length's start value assumes the subject sits about 1 m from the
camera (`focal_guess`); on the synthetic subject (1.2 m) the fit lands within 15% of the truth.

The poses are then smoothed (Savitzky-Golay over 0.2 s on rotation vectors and translations) and
returned as camera-to-world matrices, as `thkit.data.layout` stores them.

`landmarks_3d` gives the per-frame 3D landmarks the landmark path trains on: each frame's 2D
landmarks back-projected, with that frame's pose, to the depth of the subject's own 3D point. The
subject's points outside the rigid set are triangulated over the clip with the poses fixed
(closed-form least squares, pulled to the generic face where the views do not tell).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.optimize import least_squares
from scipy.signal import savgol_filter
from scipy.sparse import coo_matrix, csr_matrix
from scipy.spatial.transform import Rotation

from thkit.data.preprocess.mean_face import GENERIC_FACE, RIGID

SHAPE_PRIOR = 5.0  # px per dm of shape change, per sqrt(frame): the generic face's pull on S
FOCAL_PRIOR = 2.0  # px per unit of log focal, per sqrt(frame)
ROBUST_SCALE = 2.0  # px: landmarks off by more than this count less and less (soft L1) ...
ROBUST_ROUNDS = 2  # ... through this many re-weighted solves after a plain least-squares one
SMOOTH_SECONDS = 0.2
ASSUMED_DISTANCE = 10.0  # dm from the camera to the head, for the focal length's start value
OPENCV_TO_GL = np.diag([1.0, -1.0, -1.0])  # OpenCV camera axes (y down, looks along +z) to OpenGL


@dataclass
class HeadFit:
    rotations: np.ndarray  # [N, 3, 3] head space -> OpenGL camera
    translations: np.ndarray  # [N, 3] dm
    shape: np.ndarray  # [68, 3] the subject's face in canonical head space (rigid points fitted)
    focal: float
    cx: float
    cy: float

    def camera_to_world(self) -> np.ndarray:
        """[N, 4, 4] OpenGL camera-to-world in canonical head space."""
        poses = np.tile(np.eye(4), (self.rotations.shape[0], 1, 1))
        transposed = np.transpose(self.rotations, (0, 2, 1))
        poses[:, :3, :3] = transposed
        poses[:, :3, 3] = -np.einsum("nij,nj->ni", transposed, self.translations)
        return poses

    def project(self, points: np.ndarray) -> np.ndarray:
        """[N, P, 2] pixels of head-space points [P, 3] (or [N, P, 3], per frame)."""
        return project(camera_points(self.rotations, self.translations, points), self.focal, self.cx, self.cy)

    def reprojection_error(self, landmarks: np.ndarray, points: np.ndarray = RIGID) -> np.ndarray:
        """[N] mean pixel distance between the fitted rigid points' projections and the landmarks."""
        return np.linalg.norm(self.project(self.shape[points]) - landmarks[:, points], axis=-1).mean(axis=1)


def camera_points(rotations: np.ndarray, translations: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Head-space points [P, 3] or [N, P, 3] in each frame's camera: [N, P, 3]."""
    return points @ np.transpose(rotations, (0, 2, 1)) + translations[:, None, :]


def project(camera: np.ndarray, focal: float, cx: float, cy: float) -> np.ndarray:
    depth = np.maximum(-camera[..., 2], 1e-6)
    return np.stack([cx + focal * camera[..., 0] / depth, cy - focal * camera[..., 1] / depth], axis=-1)


def from_camera_to_world(poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of `HeadFit.camera_to_world`: ([N, 3, 3] rotations, [N, 3] translations)."""
    rotations = np.transpose(poses[:, :3, :3], (0, 2, 1))
    return rotations, -np.einsum("nij,nj->ni", rotations, poses[:, :3, 3])


def focal_guess(landmarks: np.ndarray) -> float:
    """The focal length (px) that puts the face ASSUMED_DISTANCE from the camera.

    Landmarks of a head turning by tens of degrees hardly tell the focal length from the distance
    (left free, the fit drifts towards an orthographic camera), so the start value and the prior
    come from a typical recording distance and the face's size in the image: the outer eye corners
    are 0.9 dm apart in head space.
    """
    eye_span = float(np.median(np.linalg.norm(landmarks[:, 45] - landmarks[:, 36], axis=-1)))
    return ASSUMED_DISTANCE * eye_span / np.linalg.norm(GENERIC_FACE[45] - GENERIC_FACE[36])


def initial_poses(landmarks: np.ndarray, shape: np.ndarray, focal: float, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame PnP of the rigid points, each frame started from the one before: (rotvecs, translations)."""
    camera = np.array([[focal, 0, cx], [0, focal, cy], [0, 0, 1]])
    model = np.ascontiguousarray(shape[RIGID])
    rotvecs = np.zeros((landmarks.shape[0], 3))
    translations = np.zeros((landmarks.shape[0], 3))
    rvec = Rotation.from_matrix(OPENCV_TO_GL).as_rotvec().reshape(3, 1)  # facing the camera
    eye_span = np.linalg.norm(landmarks[0, 45] - landmarks[0, 36])
    tvec = np.array([[0.0], [0.0], [focal * 0.9 / max(eye_span, 1.0)]])
    for i in range(landmarks.shape[0]):
        image = np.ascontiguousarray(landmarks[i, RIGID])
        ok, r, t = cv2.solvePnP(model, image, camera, None, rvec.copy(), tvec.copy(), useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE)
        if ok and t[2, 0] > 0:
            rvec, tvec = r, t
        gl_rotation = OPENCV_TO_GL @ Rotation.from_rotvec(rvec.ravel()).as_matrix()
        rotvecs[i] = Rotation.from_matrix(gl_rotation).as_rotvec()
        translations[i] = OPENCV_TO_GL @ tvec.ravel()
    return rotvecs, translations


def _left_jacobian(rotvecs: np.ndarray) -> np.ndarray:
    """[N, 3, 3] left Jacobian of SO(3): d(R(w) p)/dw = -[R(w) p]x J(w)."""
    theta = np.linalg.norm(rotvecs, axis=1)[:, None, None]
    small = theta < 1e-8
    theta = np.where(small, 1.0, theta)
    cross = _skew(rotvecs)
    a = np.where(small, 0.5, (1 - np.cos(theta)) / theta**2)
    b = np.where(small, 1.0 / 6.0, (theta - np.sin(theta)) / theta**3)
    return np.eye(3) + a * cross + b * cross @ cross


def _skew(v: np.ndarray) -> np.ndarray:
    out = np.zeros(v.shape[:-1] + (3, 3))
    out[..., 0, 1], out[..., 0, 2], out[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    out[..., 1, 0], out[..., 2, 0], out[..., 2, 1] = v[..., 2], -v[..., 1], v[..., 0]
    return out


class _Problem:
    """The joint fit's residuals and their sparse Jacobian, over x = [log f | S (3P) | rotvecs (3N) | t (3N)]."""

    def __init__(self, observed: np.ndarray, generic: np.ndarray, cx: float, cy: float, log_guess: float) -> None:
        self.observed, self.generic, self.cx, self.cy, self.log_guess = observed, generic, cx, cy, log_guess
        self.n_frames, self.n_points = observed.shape[:2]
        self.weights = np.ones((self.n_frames, self.n_points, 1))  # per landmark: sqrt of its robust weight
        self.shape_weight = SHAPE_PRIOR * np.sqrt(self.n_frames)
        self.focal_weight = FOCAL_PRIOR * np.sqrt(self.n_frames)
        n, p = self.n_frames, self.n_points
        frame, point, axis = np.meshgrid(np.arange(n), np.arange(p), np.arange(2), indexing="ij")
        row = (frame * p + point) * 2 + axis  # [N, P, 2]
        base_r, base_t = 1 + 3 * p, 1 + 3 * p + 3 * n
        k = np.arange(3)
        columns = [
            np.zeros_like(row)[..., None],
            1 + 3 * point[..., None] + k,
            base_r + 3 * frame[..., None] + k,
            base_t + 3 * frame[..., None] + k,
        ]
        self._rows = np.concatenate([np.broadcast_to(row[..., None], c.shape).reshape(n, p, 2, -1) for c in columns], axis=-1).ravel()
        self._cols = np.concatenate([c.reshape(n, p, 2, -1) for c in columns], axis=-1).ravel()
        n_data = 2 * n * p
        self._prior_rows = np.concatenate([n_data + np.arange(3 * p), [n_data + 3 * p]])
        self._prior_cols = np.concatenate([1 + np.arange(3 * p), [0]])
        self.jacobian_shape = (n_data + 3 * p + 1, 1 + 3 * p + 6 * n)

    def unpack(self, x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        n, p = self.n_frames, self.n_points
        rot = x[1 + 3 * p : 1 + 3 * p + 3 * n].reshape(n, 3)
        trans = x[1 + 3 * p + 3 * n :].reshape(n, 3)
        return float(np.exp(x[0])), x[1 : 1 + 3 * p].reshape(p, 3), rot, trans

    def residuals(self, x: np.ndarray) -> np.ndarray:
        focal, shape, rot, trans = self.unpack(x)
        pixels = project(camera_points(Rotation.from_rotvec(rot).as_matrix(), trans, shape), focal, self.cx, self.cy)
        priors = [self.shape_weight * (shape - self.generic).ravel(), [self.focal_weight * (x[0] - self.log_guess)]]
        return np.concatenate([(self.weights * (pixels - self.observed)).ravel(), *priors])

    def reweight(self, x: np.ndarray) -> None:
        """Robust (soft-L1) weights from the landmarks' current misfit, for the next solve."""
        focal, shape, rot, trans = self.unpack(x)
        pixels = project(camera_points(Rotation.from_rotvec(rot).as_matrix(), trans, shape), focal, self.cx, self.cy)
        misfit = np.linalg.norm(pixels - self.observed, axis=-1, keepdims=True)
        self.weights = (1 + (misfit / ROBUST_SCALE) ** 2) ** -0.25

    def jacobian(self, x: np.ndarray) -> csr_matrix:
        focal, shape, rot, trans = self.unpack(x)
        rotations = Rotation.from_rotvec(rot).as_matrix()
        turned = camera_points(rotations, np.zeros_like(trans), shape)  # R S, [N, P, 3]
        camera = turned + trans[:, None, :]
        X, Y, Z = camera[..., 0], camera[..., 1], camera[..., 2]
        zero = np.zeros_like(X)
        # d(u, v)/d(camera point): u = cx - f X / Z, v = cy + f Y / Z
        d_camera = focal * np.stack(
            [np.stack([-1 / Z, zero, X / Z**2], axis=-1), np.stack([zero, 1 / Z, -Y / Z**2], axis=-1)], axis=2
        )  # [N, P, 2, 3]
        d_focal = np.stack([-focal * X / Z, focal * Y / Z], axis=-1)[..., None]  # [N, P, 2, 1]
        d_shape = d_camera @ rotations[:, None]  # [N, P, 2, 3]
        d_rot = -d_camera @ _skew(turned) @ _left_jacobian(rot)[:, None]  # [N, P, 2, 3]
        values = (self.weights[..., None] * np.concatenate([d_focal, d_shape, d_rot, d_camera], axis=-1)).ravel()
        prior_values = np.concatenate([np.full(3 * self.n_points, self.shape_weight), [self.focal_weight]])
        return coo_matrix(
            (np.concatenate([values, prior_values]), (np.concatenate([self._rows, self._prior_rows]), np.concatenate([self._cols, self._prior_cols]))),
            shape=self.jacobian_shape,
        ).tocsr()


def fit_head(
    landmarks: np.ndarray, cx: float, cy: float, focal_guess: float, advance: Callable[[int], None] = lambda n=1: None
) -> HeadFit:
    """Jointly fit the subject's rigid 3D face, every frame's pose and the focal length to [N, 68, 2] landmarks."""
    rotvecs, translations = initial_poses(landmarks, GENERIC_FACE, focal_guess, cx, cy)
    advance(1)
    problem = _Problem(landmarks[:, RIGID], GENERIC_FACE[RIGID], cx, cy, float(np.log(focal_guess)))
    x = np.concatenate([[problem.log_guess], GENERIC_FACE[RIGID].ravel(), rotvecs.ravel(), translations.ravel()])
    for round in range(ROBUST_ROUNDS + 1):
        if round:
            problem.reweight(x)
        x = least_squares(problem.residuals, x, jac=problem.jacobian, method="trf", tr_solver="lsmr", x_scale="jac", max_nfev=100).x
        advance(1)
    focal, rigid, rot, trans = problem.unpack(x)
    shape = GENERIC_FACE.copy()
    shape[RIGID] = rigid
    fit = HeadFit(Rotation.from_rotvec(rot).as_matrix(), trans, shape, focal, cx, cy)
    fit.shape = triangulate(landmarks, fit)
    return fit


def smooth(fit: HeadFit, fps: float) -> HeadFit:
    """Savitzky-Golay smoothing of rotations (as rotation vectors about the mean) and translations."""
    window = max(3, int(round(SMOOTH_SECONDS * fps)) | 1)
    if fit.rotations.shape[0] < window:
        return fit
    mean = Rotation.from_matrix(fit.rotations).mean()
    relative = (Rotation.from_matrix(fit.rotations) * mean.inv()).as_rotvec()
    relative = savgol_filter(relative, window, 2, axis=0, mode="interp")
    rotations = (Rotation.from_rotvec(relative) * mean).as_matrix()
    translations = savgol_filter(fit.translations, window, 2, axis=0, mode="interp")
    return HeadFit(rotations, translations, fit.shape, fit.focal, fit.cx, fit.cy)


def align_generic(shape: np.ndarray, points: np.ndarray = RIGID) -> np.ndarray:
    """The generic face moved, turned and scaled onto `shape`'s given points (Umeyama), all 68 points."""
    source, target = GENERIC_FACE[points], shape[points]
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    a, b = source - source_mean, target - target_mean
    u, singular, vt = np.linalg.svd(b.T @ a)
    flip = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ flip @ vt
    scale = float(np.trace(np.diag(singular) @ flip) / np.sum(a**2))
    return (scale * (rotation @ (GENERIC_FACE - source_mean).T)).T + target_mean


def triangulate(landmarks: np.ndarray, fit: HeadFit, prior: float = SHAPE_PRIOR, keep_rigid: bool = True) -> np.ndarray:
    """The subject's 68 points with the poses fixed: the rigid ones as fitted (unless not
    `keep_rigid`), the others triangulated.

    Linear least squares per point (the pinhole equations multiplied by depth, then divided by the
    depth of the generic point so each row is in pixels), plus `prior` px per dm towards the
    generic face aligned to the fitted rigid points.
    """
    guess = align_generic(fit.shape)
    depth = -camera_points(fit.rotations, fit.translations, guess)[..., 2]  # [N, 68]
    du = (landmarks[..., 0] - fit.cx) / depth  # [N, 68]
    dv = (fit.cy - landmarks[..., 1]) / depth
    f = fit.focal / depth
    r0, r1, r2 = fit.rotations[:, 0], fit.rotations[:, 1], fit.rotations[:, 2]  # [N, 3]
    t0, t1, t2 = fit.translations[:, 0], fit.translations[:, 1], fit.translations[:, 2]
    # rows a . S = b, for u and for v, per frame and point
    a_u = -du[..., None] * r2[:, None] - f[..., None] * r0[:, None]  # [N, 68, 3]
    b_u = du * t2[:, None] + f * t0[:, None]
    a_v = -dv[..., None] * r2[:, None] - f[..., None] * r1[:, None]
    b_v = dv * t2[:, None] + f * t1[:, None]
    weight = prior**2 * landmarks.shape[0]
    normal = np.einsum("npi,npj->pij", a_u, a_u) + np.einsum("npi,npj->pij", a_v, a_v) + weight * np.eye(3)
    rhs = np.einsum("npi,np->pi", a_u, b_u) + np.einsum("npi,np->pi", a_v, b_v) + weight * guess
    shape = np.linalg.solve(normal, rhs[..., None])[..., 0]
    if keep_rigid:
        shape[RIGID] = fit.shape[RIGID]
    return shape


def landmarks_3d(landmarks: np.ndarray, fit: HeadFit) -> np.ndarray:
    """[N, 68, 3] each frame's 2D landmarks back-projected into head space at the subject's depths."""
    depth = -camera_points(fit.rotations, fit.translations, fit.shape)[..., 2]  # [N, 68]
    camera = np.stack(
        [(landmarks[..., 0] - fit.cx) * depth / fit.focal, (fit.cy - landmarks[..., 1]) * depth / fit.focal, -depth], axis=-1
    )
    return np.einsum("nji,npj->npi", fit.rotations, camera - fit.translations[:, None, :])
