"""The teacher's geometry, pure numpy: MediaPipe face mesh -> head pose, and mesh -> 68 points.

Kept apart from edge.train.teacher (which needs MediaPipe and its numpy<2 environment) so the maths
is tested in the main environment. Meshes are [M,468,3] image pixels (x right, y down, z away from
the camera, scaled like x), as MediaPipe's normalised landmarks times (width, height, width).

Pose: a rigid fit of a mean face (fitted on HELEN train) to the mesh's upper face, decomposed as
R = Rz(-roll) Ry(yaw) Rx(-pitch) in a camera frame with x right, y up, z toward the viewer. Roll is
the outermost rotation, so it equals the image angle of the face's left-right axis, i.e. the eye
line of edge.model.crop; yaw > 0 turns the face toward the image's right, pitch > 0 looks up.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Sequence, Tuple

import numpy as np

from edge.errors import DatasetError

MESH_POINTS = 468
DEFAULT_FIT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "teacher_fit.npz")
# Subject's right / left mesh points: outer and inner eye corners, mouth corners, cheek sides.
MIRROR_PAIRS = ((33, 263), (133, 362), (61, 291), (234, 454))
UPPER_LIP_TOP = 0  # pose is fitted above it: the mouth and jaw move with expression, not with the head
PROCRUSTES_ROUNDS = 5


@dataclass(frozen=True)
class TeacherFit:
    """What edge.train.teacher fits on HELEN train: a mean face for pose, and the 68-point map.

    mean_face [468,3]: camera frame (x toward the subject's left, y up, z out of the face), unit RMS.
    pose_points [P]: mesh points the pose is fitted on. indices, weights [68,K]: landmark j is
    sum_k weights[j,k] * mesh[indices[j,k]]; each row of weights sums to 1 (zero-padded).
    """

    mean_face: np.ndarray
    pose_points: np.ndarray
    indices: np.ndarray
    weights: np.ndarray

    def save(self, path: str) -> None:
        np.savez(path, mean_face=self.mean_face.astype(np.float32), pose_points=self.pose_points.astype(np.int16),
                 indices=self.indices.astype(np.int16), weights=self.weights.astype(np.float32))

    @classmethod
    def load(cls, path: str) -> "TeacherFit":
        try:
            with np.load(path) as data:
                return cls(data["mean_face"].astype(np.float64), data["pose_points"].astype(np.int64),
                           data["indices"].astype(np.int64), data["weights"].astype(np.float64))
        except (OSError, KeyError, ValueError) as exc:
            raise DatasetError(f"{path}: not a teacher fit ({exc}); rerun `python -m edge.train.teacher --refit`") from exc


def to_camera(meshes: np.ndarray) -> np.ndarray:
    """Image pixels (y down, z away) -> camera frame (y up, z toward the viewer): a 180 deg turn about x."""
    return meshes * np.array([1.0, -1.0, -1.0])


def rotation_from_euler(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Face -> camera rotation for angles in degrees (the module's convention)."""
    a, b, g = math.radians(yaw), math.radians(-pitch), math.radians(-roll)
    rz = np.array([[math.cos(g), -math.sin(g), 0], [math.sin(g), math.cos(g), 0], [0, 0, 1]])
    ry = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    return rz @ ry @ rx


def euler_from_rotation(r: np.ndarray) -> Tuple[float, float, float]:
    """Inverse of `rotation_from_euler`: (yaw, pitch, roll) in degrees."""
    yaw = math.asin(max(-1.0, min(1.0, -r[2, 0])))
    pitch = -math.atan2(r[2, 1], r[2, 2])
    roll = -math.atan2(r[1, 0], r[0, 0])
    return math.degrees(yaw), math.degrees(pitch), math.degrees(roll)


def rotation_between(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The rotation R that best maps centred points src onto centred dst (dst ~ src @ R.T), Kabsch."""
    u, _, vt = np.linalg.svd(src.T @ dst)
    d = np.ones(src.shape[1])
    d[-1] = np.sign(np.linalg.det(vt.T @ u.T))
    return (vt.T * d) @ u.T


def fit_mean_face(meshes: np.ndarray) -> np.ndarray:
    """Generalised Procrustes mean of meshes [F,468,3] px, turned so the subject's right-left pairs
    run along +x and its 'up' is the camera's up as seen on average (that average is zero pitch)."""
    shapes = np.stack([_unit(m) for m in to_camera(meshes)])
    mean = shapes.mean(0)
    for _ in range(PROCRUSTES_ROUNDS):
        aligned = np.stack([s @ rotation_between(s, mean).T for s in shapes])
        mean = _unit(aligned.mean(0))
    x = np.mean([_normalized(mean[left] - mean[right]) for right, left in MIRROR_PAIRS], axis=0)
    x = _normalized(x)
    y = _normalized(np.array([0.0, 1.0, 0.0]) - x[1] * x)
    frame = np.stack([x, y, np.cross(x, y)])
    return mean @ frame.T


def pose_points(mean_face: np.ndarray) -> np.ndarray:
    """Mesh points above the upper lip: the part of the face that moves with the head only."""
    return np.flatnonzero(mean_face[:, 1] > mean_face[UPPER_LIP_TOP, 1])


def head_pose(meshes: np.ndarray, fit: TeacherFit) -> np.ndarray:
    """[M,468,3] px -> [M,3] (yaw, pitch, roll) degrees; rows with NaN stay NaN."""
    ref = fit.mean_face[fit.pose_points]
    ref = ref - ref.mean(0)
    out = np.full((len(meshes), 3), np.nan)
    for i, mesh in enumerate(to_camera(meshes)[:, fit.pose_points]):
        if np.isfinite(mesh).all():
            out[i] = euler_from_rotation(rotation_between(ref, mesh - mesh.mean(0)))
    return out


def apply_mapping(meshes: np.ndarray, indices: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """[M,468,>=2] px -> [M,68,2] px: each landmark a fixed affine combination of mesh points."""
    return np.einsum("mjkc,jk->mjc", meshes[:, indices, :2], weights)


def fit_mapping(meshes: np.ndarray, targets: np.ndarray, neighbours: Sequence[int], ridges: Sequence[float],
                folds: int = 5) -> Tuple[np.ndarray, np.ndarray, float]:
    """Fit the mesh -> 68-point map on faces with human labels.

    Both point sets go into a pose-normalised frame (a 2-D similarity onto the mean mesh, inter-ocular
    1); there each landmark is a least-squares combination, weights summing to 1, of its K nearest
    mean-mesh points, with a ridge. K and the ridge are chosen per landmark by `folds`-fold
    cross-validation. Weights summing to 1 make the map commute with similarities, so it applies to
    pixels directly. Returns (indices [68,Kmax], weights [68,Kmax], cross-validated NME).
    """
    mesh2d, target2d = _pose_normalised(meshes[:, :, :2], targets)
    mean_mesh = mesh2d.mean(0)
    fold_of = np.arange(len(mesh2d)) % folds
    k_max = max(neighbours)
    indices = np.zeros((targets.shape[1], k_max), dtype=np.int64)
    weights = np.zeros((targets.shape[1], k_max))
    cv_pred = np.zeros_like(target2d)
    for j in range(targets.shape[1]):
        order = np.argsort(np.linalg.norm(mean_mesh - target2d[:, j].mean(0), axis=1))
        best = None
        for k in neighbours:
            for ridge in ridges:
                pred = np.zeros((len(mesh2d), 2))
                for f in range(folds):
                    train = fold_of != f
                    w = _solve_affine(mesh2d[train][:, order[:k]], target2d[train, j], ridge)
                    pred[~train] = np.einsum("fkc,k->fc", mesh2d[~train][:, order[:k]], w)
                err = np.linalg.norm(pred - target2d[:, j], axis=1).mean()
                if best is None or err < best[0]:
                    best = (err, k, ridge, pred)
        _, k, ridge, cv_pred[:, j] = best
        indices[j, :k] = order[:k]
        weights[j, :k] = _solve_affine(mesh2d[:, order[:k]], target2d[:, j], ridge)
    cv_nme = np.linalg.norm(cv_pred - target2d, axis=2).mean(1) / np.linalg.norm(target2d[:, 36] - target2d[:, 45], axis=1)
    return indices, weights, float(cv_nme.mean())


def _solve_affine(points: np.ndarray, target: np.ndarray, ridge: float) -> np.ndarray:
    """min_w sum_f |points[f].T w - target[f]|^2 + ridge * F * |w|^2 subject to sum(w) = 1 (KKT system)."""
    f, k, _ = points.shape
    a = points.transpose(0, 2, 1).reshape(2 * f, k)
    b = target.reshape(2 * f)
    kkt = np.zeros((k + 1, k + 1))
    kkt[:k, :k] = a.T @ a + ridge * f * np.eye(k)
    kkt[:k, k] = kkt[k, :k] = 1.0
    rhs = np.concatenate([a.T @ b, [1.0]])
    return np.linalg.solve(kkt, rhs)[:k]


def _pose_normalised(mesh2d: np.ndarray, targets: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Map each face (mesh and its targets alike) by the 2-D similarity that best fits its mesh onto the
    mean mesh (complex least squares), the mean having the mesh's outer eye corners 1 apart."""
    z = mesh2d[..., 0] + 1j * mesh2d[..., 1]
    t = targets[..., 0] + 1j * targets[..., 1]
    centre = z.mean(1, keepdims=True)
    z, t = z - centre, t - centre
    ref = z[0] / abs(z[0, MIRROR_PAIRS[0][1]] - z[0, MIRROR_PAIRS[0][0]])
    for _ in range(PROCRUSTES_ROUNDS):
        scale_rot = (np.conj(z) * ref).sum(1, keepdims=True) / (abs(z) ** 2).sum(1, keepdims=True)
        ref = (z * scale_rot).mean(0)
        ref = ref / abs(ref[MIRROR_PAIRS[0][1]] - ref[MIRROR_PAIRS[0][0]])
    z, t = z * scale_rot, t * scale_rot
    return np.stack([z.real, z.imag], -1), np.stack([t.real, t.imag], -1)


def _unit(points: np.ndarray) -> np.ndarray:
    centred = points - points.mean(0)
    return centred / np.sqrt((centred ** 2).sum(1).mean())


def _normalized(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)
