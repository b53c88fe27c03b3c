"""The one crop/warp/normalise and its inverse, shared by runtime, training and evaluation."""
from __future__ import annotations

import os
import re
import shutil
import struct
from dataclasses import replace
from typing import Dict

import numpy as np
import pytest

from edge.errors import EngineError
from edge.model.spec import ModelSpec
from edge.model.crop import (CropBox, crop_from_landmarks, crop_matrix, landmarks_to_crop, landmarks_to_frame,
                                mirror_permutation,
                                pose_to_crop, pose_to_frame, warp_crops)
from edge.pipeline.gpu_crop import KERNEL
from edge.runtime import kernels
from edge.runtime.kernels import SearchPath, compile_cubin

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


ARCHS = ("sm_87", "sm_89")  # Jetson Orin, an Ada desktop GPU
NO_COMPILER = ("no {} on this machine (nvcc: a CUDA toolkit in /usr/local/cuda* or CUDA_HOME; NVRTC: the toolkit's, "
               "or pip's nvidia-cuda-nvrtc-cu12 in a venv's site-packages or on LD_LIBRARY_PATH)")


def machine_compilers() -> Dict[str, kernels.Compiler]:
    return {c.kind: c for c in kernels.find_compilers(SearchPath.from_environment(), [])}


def cubin_sm(cubin: bytes) -> int:
    """The SM a CUBIN is for: CUDA's ELF keeps it in e_flags, bits 0-7 up to ELF ABI 7 (CUDA 12), 8-15 from 8."""
    assert cubin[:4] == kernels.ELF_MAGIC and cubin[7] in (0x33, 0x41)  # ELF, OS ABI CUDA (0x41 from CUDA 13)
    flags = struct.unpack_from("<I", cubin, 48)[0]
    return (flags >> 8) & 0xFF if cubin[8] >= 8 else flags & 0xFF


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("kind", ["nvrtc", "nvcc"])
def test_the_gpu_twin_of_warp_crops_compiles_to_a_cubin_for_the_exact_sm(kind, arch):
    """The kernel is compiled on the target at first use; a typo must fail here, not on a Jetson."""
    compiler = machine_compilers().get(kind)
    if compiler is None:
        pytest.skip(NO_COMPILER.format(kind))
    cubin = compiler.compile(KERNEL, arch)
    assert cubin_sm(cubin) == int(arch[3:])  # SASS for this SM: no PTX for an older driver to choke on
    assert b"warp_affine_normalize\0" in cubin  # extern "C": the unmangled name get_function looks up


def test_a_compiled_kernel_is_cached_and_the_second_call_compiles_nothing(tmp_path, monkeypatch):
    search = SearchPath.from_environment()
    if not kernels.find_compilers(search, []):
        pytest.skip(NO_COMPILER.format("CUDA compiler"))
    compiled = []
    for cls in (kernels.Nvrtc, kernels.Nvcc):
        def counted(self, source, arch, _compile=cls.compile):
            compiled.append(arch)
            return _compile(self, source, arch)
        monkeypatch.setattr(cls, "compile", counted)
    first = compile_cubin(KERNEL, "sm_87", search, str(tmp_path))
    (entry,) = tmp_path.iterdir()
    assert re.fullmatch(r"[0-9a-f]{16}\.sm_87\.cubin", entry.name) and entry.read_bytes() == first
    assert compile_cubin(KERNEL, "sm_87", search, str(tmp_path)) == first
    assert compiled == ["sm_87"]  # the hit ran no compiler
    compile_cubin(KERNEL, "sm_89", search, str(tmp_path))
    compile_cubin(KERNEL + "// edited", "sm_87", search, str(tmp_path))
    assert compiled == ["sm_87", "sm_89", "sm_87"] and len(list(tmp_path.iterdir())) == 3  # SM and source in the key
    entry.write_bytes(b"half a file")  # a damaged entry is rebuilt, never handed to the driver
    assert compile_cubin(KERNEL, "sm_87", search, str(tmp_path)) == first and len(compiled) == 4
    assert entry.read_bytes() == first


def test_an_unwritable_cache_compiles_in_memory_and_goes_on(tmp_path):
    if not machine_compilers():
        pytest.skip(NO_COMPILER.format("CUDA compiler"))
    blocker = tmp_path / "not-a-folder"
    blocker.write_bytes(b"")  # a file where the cache folder would go: fails even for root
    assert cubin_sm(compile_cubin(KERNEL, "sm_87", cache_dir=str(blocker / "kernels"))) == 87


def test_nvcc_off_the_path_is_found_under_cuda_home(tmp_path, monkeypatch):
    """A stock JetPack: nvcc in /usr/local/cuda/bin, which is not on the PATH."""
    found = [os.path.realpath(p) for p in SearchPath.from_environment().nvcc_paths()]
    real = next((p for p in found if os.path.isfile(os.path.join(os.path.dirname(p), "nvcc.profile"))), None)
    if real is None:
        pytest.skip(NO_COMPILER.format("toolkit nvcc"))
    home = tmp_path / "cuda"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "nvcc").symlink_to(real)  # run through the link, nvcc would find neither profile nor headers
    dirs = os.environ["PATH"].split(os.pathsep)
    monkeypatch.setenv("PATH", os.pathsep.join(d for d in dirs if not os.path.exists(os.path.join(d, "nvcc"))))  # gcc stays
    monkeypatch.setenv("CUDA_HOME", str(home))
    monkeypatch.delenv("CUDA_PATH", raising=False)
    monkeypatch.setattr(kernels, "SYSTEM_CUDA", str(tmp_path / "no-system-cuda"))
    search = SearchPath.from_environment()
    assert shutil.which("nvcc", path=search.path) is None
    assert kernels.find_nvcc(search).path == str(home / "bin" / "nvcc")
    only_nvcc = replace(search, nvrtc_names=(), site_dirs=())
    assert cubin_sm(compile_cubin(KERNEL, "sm_87", only_nvcc, str(tmp_path / "cache"))) == 87


def test_with_no_compiler_anywhere_the_error_is_one_line_that_names_the_fix(tmp_path):
    empty = str(tmp_path / "empty")
    os.mkdir(empty)
    search = SearchPath(path=empty, cuda_homes=(empty,), site_dirs=(empty,),
                        nvrtc_names=(os.path.join(empty, "libnvrtc.so"),))
    with pytest.raises(EngineError) as err:
        compile_cubin(KERNEL, "sm_87", search, str(tmp_path / "cache"))
    message = str(err.value)
    assert "\n" not in message
    assert "install the CUDA toolkit's NVRTC" in message and "set CUDA_HOME" in message
    for place in ("lib64", "targets/aarch64-linux/lib", "nvidia/cuda_nvrtc/lib", "bin"):  # says where it looked
        assert os.path.join(empty, place) in message
    assert not (tmp_path / "cache").exists()


def test_a_syntax_error_gives_the_compiler_log_on_one_line(tmp_path):
    if not machine_compilers():
        pytest.skip(NO_COMPILER.format("CUDA compiler"))
    broken = KERNEL.replace("const int plane = ", "const int plane = oops + ")
    line = broken[:broken.index("oops")].count("\n") + 1
    with pytest.raises(EngineError) as err:
        compile_cubin(broken, "sm_87", cache_dir=str(tmp_path))
    message = str(err.value)
    assert "\n" not in message and "could not compile the kernel for sm_87" in message
    assert f"kernel.cu({line}): error" in message and "oops" in message
    assert list(tmp_path.iterdir()) == []  # nothing cached


def test_an_sm_no_compiler_knows_is_a_one_line_error(tmp_path):
    if not machine_compilers():
        pytest.skip(NO_COMPILER.format("CUDA compiler"))
    with pytest.raises(EngineError) as err:
        compile_cubin(KERNEL, "sm_999", cache_dir=str(tmp_path))
    message = str(err.value)
    assert "\n" not in message and "cannot build for sm_999" in message
    assert "install a CUDA toolkit or NVRTC that supports sm_999" in message


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
