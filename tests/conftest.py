"""Fixtures shared by the test files: real images, models built by `make models`, ../shared data.

Anything that needs something outside the repository skips with the reason and the fix.
"""
from __future__ import annotations

from pathlib import Path

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


def model_path(name: str) -> Path:
    """A file made by `make models`; skip (saying how to make it) when it is missing."""
    path = MODELS / name
    if not path.is_file():
        pytest.skip(f"{path} is missing; run `make models`")
    return path


def pytest_collection_modifyitems(config, items) -> None:
    """Tests marked `gpu` skip, saying what is missing, unless TensorRT, pycuda and a CUDA GPU are all here."""
    gpu_tests = [item for item in items if item.get_closest_marker("gpu")]
    missing = _gpu_stack_missing() if gpu_tests else None
    for item in gpu_tests if missing else []:
        item.add_marker(pytest.mark.skip(reason=f"needs TensorRT and a CUDA GPU ({missing})"))


def _gpu_stack_missing():
    import importlib.util

    from edge.build.gpu import query_gpu
    from edge.errors import EngineError

    for module in ("tensorrt", "pycuda"):
        if importlib.util.find_spec(module) is None:
            return f"no {module} module"
    try:
        query_gpu()
    except EngineError as exc:
        return str(exc)
    return None
