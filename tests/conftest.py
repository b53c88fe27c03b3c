"""Fixtures shared by the test files: real images, models built by `make models`, ../shared data.

Anything that needs something outside the repository skips with the reason and the fix.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Optional

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (development data, never copied into the repo); skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent (development data, not shipped)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def hamilton_clip(shared_data: Path) -> Path:
    clip = shared_data / "clips" / "hamilton_640x360.mp4"
    if not clip.is_file():
        pytest.skip(f"{clip} is absent")
    return clip


@pytest.fixture(scope="session")
def astronaut_bgr() -> np.ndarray:
    """scikit-image's astronaut (512x512 BGR, one frontal face), fetched into models/ by edge.assets."""
    import cv2

    from edge.assets import fetch_astronaut
    from edge.errors import EdgeError

    try:
        path = fetch_astronaut(MODELS)
    except EdgeError as exc:
        pytest.skip(f"astronaut photo unavailable ({exc})")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"{path} does not decode"
    return image


@pytest.fixture(scope="session")
def astronaut_calibration_set(tmp_path_factory, astronaut_bgr):
    """An INT8 calibration set cut by edge.pipeline.calibration from the astronaut turned and scaled a few
    ways (needs no ../shared data)."""
    import cv2

    from edge.pipeline.calibration import make_calibration_set
    from edge.pipeline.calibration_set import CalibrationSet

    frames = tmp_path_factory.mktemp("astronaut_frames")
    for i, (angle, scale) in enumerate([(0, 1.0), (-15, 0.8), (12, 1.2), (25, 0.9), (-30, 1.1), (5, 0.6)]):
        m = cv2.getRotationMatrix2D((256, 256), angle, scale)
        cv2.imwrite(str(frames / f"{i}.png"), cv2.warpAffine(astronaut_bgr, m, (512, 512), borderMode=cv2.BORDER_REFLECT))
    out = tmp_path_factory.mktemp("calib") / "astronaut"
    make_calibration_set(str(frames), str(out), str(model_path("atpn68.onnx")), str(model_path("blazeface_short.onnx")))
    return CalibrationSet.open(str(out))


def model_path(name: str) -> Path:
    """A file made by `make models`; skip (saying how to make it) when it is missing."""
    path = MODELS / name
    if not path.is_file():
        pytest.skip(f"{path} is missing; run `make models`")
    return path


def pytest_collection_modifyitems(config, items) -> None:
    """`gpu` tests need pycuda and a CUDA GPU; those also marked `tensorrt` need TensorRT as well.
    Each skips saying what is missing, so a GPU without TensorRT still runs the CUDA tests."""
    for item in items:
        if item.get_closest_marker("gpu"):
            missing = _gpu_stack_missing(needs_tensorrt=item.get_closest_marker("tensorrt") is not None)
            if missing:
                item.add_marker(pytest.mark.skip(reason=f"needs {missing}"))


@functools.lru_cache(maxsize=None)
def _gpu_stack_missing(needs_tensorrt: bool) -> Optional[str]:
    import importlib.util

    from edge.runtime.gpu import query_gpu
    from edge.errors import EngineError

    if importlib.util.find_spec("pycuda") is None:
        return "the pycuda module (CUDA from Python)"
    if needs_tensorrt:
        from edge.runtime.trt_compat import import_tensorrt

        try:
            import_tensorrt()  # full TensorRT, else TensorRT-RTX
        except EngineError:
            return "TensorRT or TensorRT-RTX"
    try:
        query_gpu()
    except EngineError as exc:
        return f"a CUDA GPU ({exc})"
    return None
