"""The one crop/warp/normalise and its inverse, shared by runtime, training and evaluation."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from edge.model.spec import ModelSpec
from edge.pipeline.crop import (CropBox, crop_from_landmarks, crop_matrix, landmarks_to_crop, landmarks_to_frame,
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
