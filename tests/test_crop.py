"""The one crop/warp/normalise and its inverse, shared by runtime, training and evaluation."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from edge.model.spec import ModelSpec
from edge.pipeline.crop import (CropBox, crop_from_landmarks, crop_matrix, landmarks_to_crop, landmarks_to_frame,
                                mirror_permutation,
                                pose_to_crop, pose_to_frame, warp_crops)

SPEC = ModelSpec()


@pytest.mark.parametrize("angle", [0.0, 25.0, -140.0])
def test_a_bright_dot_lands_where_the_matrix_says(angle):
    frame = np.zeros((300, 400, 3), np.uint8)
    dot = np.array([230.0, 140.0])
    frame[140, 230] = 255
    box = CropBox(210, 150, 90, angle)
    crops, matrices = warp_crops(frame, [box], SPEC)
    img = crops[0].sum(0)
    found = np.unravel_index(np.argmax(img), img.shape)[::-1]
    want = landmarks_to_crop(dot[None], matrices[0], SPEC.input_size)[0] * SPEC.input_size
    assert np.abs(np.array(found) - want).max() <= 1.0


def test_frame_to_crop_and_back_is_identity():
    rng = np.random.default_rng(0)
    pts = rng.uniform(50, 250, (68, 2))
    m = crop_matrix(CropBox(150, 160, 120, 17.0), SPEC.input_size)
    norm = landmarks_to_crop(pts, m, SPEC.input_size)
    back = landmarks_to_frame(norm[None], m[None], SPEC.input_size)[0]
    np.testing.assert_allclose(back, pts, atol=1e-9)


def test_crop_from_landmarks_follows_rotation_without_growing():
    rng = np.random.default_rng(1)
    pts = rng.uniform(-40, 40, (68, 2))
    pts[36:42] += (-30, 0)  # eyes level
    pts[42:48] += (30, 0)
    upright = crop_from_landmarks(pts + 200, scale=1.5)
    a = np.radians(20.0)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    turned = crop_from_landmarks(pts @ rot.T + 200, scale=1.5)
    assert abs(turned.angle_deg - upright.angle_deg - 20.0) < 1e-6
    assert abs(turned.size - upright.size) < 1e-6
    assert abs(turned.cx - 200 - (upright.cx - 200) * np.cos(a) + (upright.cy - 200) * np.sin(a)) < 1e-6


def test_roll_round_trips_through_the_crop_angle():
    pose = np.array([10.0, -5.0, 170.0], np.float32)
    crop_pose = pose_to_crop(pose, angle_deg=30.0)
    assert crop_pose[2] == pytest.approx(140.0)
    np.testing.assert_allclose(pose_to_frame(crop_pose, np.float32(30.0)), pose, atol=1e-4)


def test_crop_box_rejects_a_non_positive_size():
    with pytest.raises(ValueError, match="positive"):
        CropBox(0, 0, 0)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc (CUDA toolkit) to compile the GPU crop kernel")
def test_the_gpu_twin_of_warp_crops_compiles_with_nvcc(tmp_path):
    """pycuda compiles this source at first use on the target; a typo must fail here, not on a Jetson."""
    from edge.pipeline.gpu_crop import KERNEL

    src = tmp_path / "warp.cu"
    src.write_text(KERNEL)
    done = subprocess.run(["nvcc", "--ptx", "-o", str(tmp_path / "warp.ptx"), str(src)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert ".entry warp_affine_normalize" in (tmp_path / "warp.ptx").read_text()  # extern "C": the name pycuda looks up


def test_a_mirrored_box_cuts_the_same_window_flipped():
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    box = CropBox(160, 120, 150, 20.0)
    crops, matrices = warp_crops(frame, [box, box.mirror()], SPEC)
    np.testing.assert_allclose(crops[1], crops[0][:, :, ::-1], atol=10 / SPEC.std)  # OpenCV's fixed-point rounding
    pts = rng.uniform(60, 200, (68, 2))  # mirrored crop -> frame is still the exact inverse
    back = landmarks_to_frame(landmarks_to_crop(pts, matrices[1], SPEC.input_size)[None], matrices[1:],
                              SPEC.input_size)[0]
    np.testing.assert_allclose(back, pts, atol=1e-9)
    assert box.mirror().mirror() == box


@pytest.mark.parametrize("points, right_eye, left_eye", [(68, range(36, 42), range(42, 48)),
                                                         (98, range(60, 68), range(68, 76))])
def test_mirror_permutation_is_an_involution_that_swaps_the_eyes(points, right_eye, left_eye):
    perm = mirror_permutation(points)
    np.testing.assert_array_equal(perm[perm], np.arange(points))
    assert sorted(perm[list(right_eye)]) == list(left_eye)
    fixed = np.flatnonzero(perm == np.arange(points))  # the midline: chin, nose ridge and tip, lip centres
    assert len(fixed) == 10


def test_mirror_permutation_refuses_an_unknown_scheme():
    with pytest.raises(ValueError, match="68- and 98-point"):
        mirror_permutation(5)
