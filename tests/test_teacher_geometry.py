"""The teacher's pose and mesh -> 68 map on synthetic meshes whose true pose and map are known."""
from __future__ import annotations

import math

import numpy as np
import pytest

from edge.errors import DatasetError
from edge.train import teacher_geometry as geo

RNG = np.random.default_rng(1)


def symmetric_face() -> np.ndarray:
    """A face in the camera frame (x toward the subject's left, y up, z out) whose mirror pairs are mirrored."""
    face = RNG.normal(0, 1, (geo.MESH_POINTS, 3)) * (1.0, 1.2, 0.5)
    for right, left in geo.MIRROR_PAIRS:
        face[left] = face[right] * (-1, 1, 1)
    return face


def to_image(face: np.ndarray, yaw: float, pitch: float, roll: float, scale: float = 40.0,
             centre=(200.0, 150.0)) -> np.ndarray:
    """The mesh MediaPipe would report for `face` posed so in the image (pixels, y down, z away)."""
    posed = face @ geo.rotation_from_euler(yaw, pitch, roll).T * scale
    return geo.to_camera(posed) + (centre[0], centre[1], 0.0)


def fit_for(face: np.ndarray) -> geo.TeacherFit:
    none = np.zeros((68, 1))
    return geo.TeacherFit(face, np.arange(geo.MESH_POINTS), none.astype(int), none + 1)


@pytest.mark.parametrize("angles", [(0, 0, 0), (30, -10, 5), (-60, 20, -15), (10, 45, 80)])
def test_euler_angles_round_trip(angles):
    np.testing.assert_allclose(geo.euler_from_rotation(geo.rotation_from_euler(*angles)), angles, atol=1e-9)


def test_pose_signs_follow_the_project_convention():
    """yaw > 0: nose toward the image's right; pitch > 0: nose up; roll: eye-line angle with y down."""
    axes = np.array([[0, 0, 1.0], [-1, 0, 0], [1, 0, 0]])  # nose, subject's right eye, left eye
    nose, right, left = to_image(axes, 20, 0, 0) - (200, 150, 0)
    assert nose[0] > 0
    nose, _, _ = to_image(axes, 0, 15, 0) - (200, 150, 0)
    assert nose[1] < 0
    _, right, left = to_image(axes, 0, 0, 12)
    assert math.degrees(math.atan2(left[1] - right[1], left[0] - right[0])) == pytest.approx(12)


@pytest.mark.parametrize("angles", [(25, -8, 6), (-40, 12, -20)])
def test_head_pose_recovers_the_pose_and_mirrors_with_the_image(angles):
    face = symmetric_face()
    fit = fit_for(face)
    mesh = to_image(face, *angles)
    np.testing.assert_allclose(geo.head_pose(mesh[None], fit)[0], angles, atol=1e-6)
    mirrored = mesh * (-1, 1, 1)
    for right, left in geo.MIRROR_PAIRS:  # mirroring the image swaps the subject's sides
        mirrored[[right, left]] = mirrored[[left, right]]
    pairs_only = np.array(geo.MIRROR_PAIRS).reshape(-1)  # the synthetic face is symmetric there only
    mirror_fit = geo.TeacherFit(face, pairs_only, fit.indices, fit.weights)
    yaw, pitch, roll = geo.head_pose(mirrored[None], mirror_fit)[0]
    np.testing.assert_allclose((yaw, pitch, roll), (-angles[0], angles[1], -angles[2]), atol=1e-6)


def test_head_pose_leaves_a_missing_face_nan():
    face = symmetric_face()
    meshes = np.stack([to_image(face, 0, 0, 0), np.full((geo.MESH_POINTS, 3), np.nan)])
    pose = geo.head_pose(meshes, fit_for(face))
    assert np.isfinite(pose[0]).all() and np.isnan(pose[1]).all()


def test_mean_face_is_the_face_turned_upright():
    face = symmetric_face()
    meshes = np.stack([to_image(face, *RNG.normal(0, 5, 3), scale=RNG.uniform(30, 60)) for _ in range(40)])
    mean = geo.fit_mean_face(meshes)
    unit = (face - face.mean(0)) / np.sqrt(((face - face.mean(0)) ** 2).sum(1).mean())
    assert np.abs(mean - unit).max() < 0.1
    np.testing.assert_allclose(geo.head_pose(to_image(face, 0, 0, 0)[None], fit_for(mean))[0], 0, atol=3)


def test_fit_mapping_recovers_a_known_affine_combination():
    """Targets made as fixed combinations of mesh points come back, in pixels, after a random similarity."""
    base = RNG.uniform(-1, 1, (geo.MESH_POINTS, 2))
    base[33], base[263] = (-0.6, -0.2), (0.6, -0.2)
    faces = base + RNG.normal(0, 0.03, (60, geo.MESH_POINTS, 2))  # non-rigid variation makes it well posed
    sources = np.argsort(((base[:, None] - base[None]) ** 2).sum(-1), axis=1)[:68, :3]  # a point and 2 neighbours
    true_weights = np.array([0.6, 0.3, 0.1])
    angle = RNG.uniform(-0.5, 0.5, 60)
    rot = np.stack([np.cos(angle), -np.sin(angle), np.sin(angle), np.cos(angle)], -1).reshape(60, 2, 2)
    meshes = np.einsum("fij,fnj->fni", rot * RNG.uniform(50, 150, (60, 1, 1)), faces) + RNG.uniform(0, 300, (60, 1, 2))
    targets = np.einsum("fjkc,k->fjc", meshes[:, sources], true_weights)
    indices, weights, cv_nme = geo.fit_mapping(meshes, targets, neighbours=(3, 6), ridges=(1e-9,))
    assert cv_nme < 1e-4
    np.testing.assert_allclose(weights.sum(1), 1, atol=1e-9)
    np.testing.assert_allclose(geo.apply_mapping(meshes, indices, weights), targets, atol=1e-3)


def test_the_shipped_fit_is_a_valid_map_and_mean_face():
    fit = geo.TeacherFit.load(geo.DEFAULT_FIT)
    assert fit.indices.shape == fit.weights.shape and fit.indices.shape[0] == 68
    assert fit.indices.min() >= 0 and fit.indices.max() < geo.MESH_POINTS
    np.testing.assert_allclose(fit.weights.sum(1), 1, atol=1e-5)
    assert fit.mean_face.shape == (geo.MESH_POINTS, 3) and len(fit.pose_points) > 100
    for right, left in geo.MIRROR_PAIRS:  # the subject's right side is on -x
        assert fit.mean_face[right, 0] < 0 < fit.mean_face[left, 0]


def test_a_missing_fit_says_how_to_make_one(tmp_path):
    with pytest.raises(DatasetError, match="--refit"):
        geo.TeacherFit.load(str(tmp_path / "none.npz"))
