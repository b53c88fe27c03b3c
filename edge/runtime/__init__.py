"""Runtime backends behind one Engine interface (`base.Engine`): ONNX Runtime now, TensorRT on Jetson."""
from __future__ import annotations

from edge.errors import EngineError
from edge.runtime.base import Engine, TensorSpec

BACKENDS = ("onnxruntime", "tensorrt")


def open_engine(path: str, backend: str = "onnxruntime", threads: int = 0, spin: bool = True) -> Engine:
    """Open `path` with `backend`; the heavy imports happen only for the backend asked for. `threads` and
    `spin` (idle CPU threads busy-wait) are ONNX Runtime's."""
    if backend == "onnxruntime":
        from edge.runtime.onnxrt import OnnxRuntimeEngine

        return OnnxRuntimeEngine(path, threads=threads, spin=spin)
    if backend == "tensorrt":
        try:
            from edge.runtime.tensorrt import TensorRTEngine
        except ImportError as exc:
            raise EngineError(f"the tensorrt backend is not available here ({exc}); use --backend onnxruntime") from exc
        return TensorRTEngine(path)
    raise EngineError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "Engine", "EngineError", "TensorSpec", "open_engine"]
