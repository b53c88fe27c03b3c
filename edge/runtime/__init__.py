"""Runtime backends behind one Engine interface (`base.Engine`): ONNX Runtime (CPU), TensorRT (GPU, Jetson).

Each backend says what it needs of a model file: ONNX Runtime opens the ONNX itself; TensorRT opens an
engine file that edge.compile builds from the ONNX once per GPU and library (the app does that step, so
loading an engine never needs the build tooling). A new backend is one module plus one entry in BACKENDS.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict

from edge.errors import EngineError
from edge.runtime.base import Engine, TensorSpec


def _onnxruntime(path: str, threads: int, spin: bool) -> Engine:
    from edge.runtime.onnxrt import OnnxRuntimeEngine

    return OnnxRuntimeEngine(path, threads=threads, spin=spin)


def _tensorrt(path: str, threads: int, spin: bool) -> Engine:
    try:
        from edge.runtime.tensorrt import TensorRTEngine
    except ImportError as exc:
        raise EngineError(f"the tensorrt backend is not available here ({exc}); use --backend onnxruntime") from exc
    return TensorRTEngine(path)


@dataclass(frozen=True)
class Backend:
    name: str
    open: Callable[[str, int, bool], Engine]  # (path, CPU threads, spin) -> Engine; heavy imports happen here
    builds_engines: bool  # True: an ONNX is compiled to this backend's own engine file before `open`
    on_device: bool  # True: its engines are `base.DeviceEngine`s, so the GPU loop runs them


BACKENDS: Dict[str, Backend] = {
    "onnxruntime": Backend("onnxruntime", _onnxruntime, builds_engines=False, on_device=False),
    "tensorrt": Backend("tensorrt", _tensorrt, builds_engines=True, on_device=True),
}


def backend_named(name: str) -> Backend:
    if name not in BACKENDS:
        raise EngineError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return BACKENDS[name]


def open_engine(path: str, backend: str = "onnxruntime", threads: int = 0, spin: bool = True) -> Engine:
    """Open `path` with `backend`; the heavy imports happen only for the backend asked for. `threads` and
    `spin` (idle CPU threads busy-wait) are ONNX Runtime's."""
    return backend_named(backend).open(path, threads, spin)


__all__ = ["BACKENDS", "Backend", "Engine", "EngineError", "TensorSpec", "backend_named", "open_engine"]
