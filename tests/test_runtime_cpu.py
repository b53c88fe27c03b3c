"""The TensorRT backend's own logic that needs no GPU: buffer planning, batch checks, backend errors."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from edge.errors import EngineError
from edge.pipeline.gpu_crop import BLOCK, launch_grid
from edge.runtime import open_engine
from edge.runtime.buffers import STAGED, ZERO_COPY, check_batch, placement_for, plan_buffers, total_bytes
from edge.runtime.tensorrt import numpy_dtype

ATPN_IO = [("crop", True, np.float32, (-1, 3, 112, 112)), ("landmarks", False, np.float32, (-1, 68, 2)),
           ("pose", False, np.float32, (-1, 3)), ("track", False, np.float32, (-1, 1)),
           ("heatmap", False, np.float32, (-1, 1, 28, 28))]


def test_buffers_are_sized_for_the_profile_max_batch():
    plans = plan_buffers(ATPN_IO, max_batch=8, placement=ZERO_COPY)
    crop = plans[0]
    assert crop.max_shape == (8, 3, 112, 112) and crop.nbytes == 8 * 3 * 112 * 112 * 4
    assert crop.shape_for(3) == (3, 3, 112, 112)
    assert total_bytes(plans)[ZERO_COPY] == sum(p.nbytes for p in plans) and total_bytes(plans)[STAGED] == 0


def test_zero_copy_only_on_an_integrated_gpu():
    assert placement_for(integrated_gpu=True) == ZERO_COPY
    assert placement_for(integrated_gpu=False) == STAGED


def test_a_second_dynamic_axis_is_refused():
    with pytest.raises(EngineError, match="dynamic axes besides the batch"):
        plan_buffers([("crop", True, np.float32, (-1, 3, -1, -1))], 4, STAGED)


@pytest.mark.parametrize("feed, problem", [
    ({"crop": np.zeros((2, 3, 112, 112), np.float32)}, None),
    ({"crop": np.zeros((9, 3, 112, 112), np.float32)}, "outside the engine's profile 1..8"),
    ({"crop": np.zeros((2, 3, 128, 128), np.float32)}, "engine takes [batch,3,112,112]"),
    ({"image": np.zeros((2, 3, 112, 112), np.float32)}, "missing input 'crop'"),
])
def test_batch_check(feed, problem):
    plans = plan_buffers(ATPN_IO, max_batch=8, placement=STAGED)
    if problem is None:
        assert check_batch(feed, plans, min_batch=1) == 2
    else:
        with pytest.raises(EngineError) as err:
            check_batch(feed, plans, min_batch=1)
        assert problem in str(err.value)


def test_dtype_map_avoids_trt_nptype():
    fake_trt = SimpleNamespace(DataType=SimpleNamespace(FLOAT="f", HALF="h", INT8="i8", INT32="i32", BOOL="b"))
    assert numpy_dtype(fake_trt, "h") == np.float16 and numpy_dtype(fake_trt, "b") == np.bool_
    with pytest.raises(EngineError, match="no numpy equivalent"):
        numpy_dtype(fake_trt, "fp8")


def test_launch_grid_covers_every_pixel_of_every_crop():
    grid = launch_grid(112, 5)
    assert grid[2] == 5 and grid[0] * BLOCK[0] >= 112 and (grid[0] - 1) * BLOCK[0] < 112


def test_tensorrt_backend_without_tensorrt_says_what_is_missing(tmp_path, monkeypatch):
    for name in ("tensorrt", "tensorrt_rtx"):
        monkeypatch.setitem(sys.modules, name, None)  # neither library importable
    with pytest.raises(EngineError) as err:
        open_engine(str(tmp_path / "atpn.engine"), backend="tensorrt")
    message = str(err.value)
    assert message.startswith("no TensorRT Python package loads") and "\n" not in message
    assert "--system-site-packages" in message and "pip install tensorrt-rtx-cu12" in message


def test_tensorrt_backend_without_a_gpu_says_so(tmp_path):
    import ctypes.util

    if importlib.util.find_spec("tensorrt") is None and importlib.util.find_spec("tensorrt_rtx") is None:
        pytest.skip("no TensorRT library installed here (make test installs tensorrt-rtx-cu12)")
    if ctypes.util.find_library("cuda"):
        pytest.skip("a CUDA driver is installed here")
    with pytest.raises(EngineError, match="^no CUDA driver") as err:
        open_engine(str(tmp_path / "atpn.engine"), backend="tensorrt")
    assert "\n" not in str(err.value)


def test_unknown_backend_is_one_line():
    with pytest.raises(EngineError, match="unknown backend 'openvino'"):
        open_engine("x.onnx", backend="openvino")


def test_runtime_imports_without_torch_or_gpu_packages():
    code = ("import sys; sys.modules['torch'] = None; sys.modules['tensorrt'] = None; sys.modules['pycuda'] = None;"
            "import edge.runtime.tensorrt, edge.pipeline.gpu_crop, edge.pipeline.aligner; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("driver_py, message", [
    (None, "pycuda is not installed"),
    ("raise ImportError('_driver.so: undefined symbol: cuArrayCreate_v2')", "installed but does not load"),
])
def test_a_missing_or_broken_pycuda_is_one_line_saying_which(tmp_path, monkeypatch, driver_py, message):
    """A pycuda built against another CUDA fails to load (seen on a lent GPU): reinstalling would not help."""
    from edge.runtime.trt_compat import import_pycuda

    if driver_py is None:
        monkeypatch.setitem(sys.modules, "pycuda", None)
    else:
        (tmp_path / "pycuda").mkdir()
        (tmp_path / "pycuda" / "__init__.py").write_text("")
        (tmp_path / "pycuda" / "driver.py").write_text(driver_py)
        monkeypatch.syspath_prepend(str(tmp_path))
        for name in ("pycuda", "pycuda.driver"):
            monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(EngineError, match=message) as info:
        import_pycuda()
    assert "\n" not in str(info.value)
