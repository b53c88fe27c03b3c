"""ONNX Runtime backend: the embedded default (CPU)."""
from __future__ import annotations

import importlib.util
import os
from typing import Any, Dict, List, Mapping, Optional

import numpy as np

from edge.errors import EngineError, ModelError
from edge.runtime.base import Engine, TensorSpec

_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(uint8)": np.uint8,
              "tensor(int8)": np.int8, "tensor(int32)": np.int32, "tensor(int64)": np.int64}


SPIN_KEY = "session.intra_op.allow_spinning"


class OnnxRuntimeEngine(Engine):
    backend = "onnxruntime"

    def __init__(self, path: str, threads: int = 0, providers: Optional[List[str]] = None, spin: bool = True) -> None:
        """`spin`: idle worker threads busy-wait for the next call (fastest flat out); off, they sleep, which
        a camera-paced loop wants (measured at 30 FPS on 2 cores: 37 CPU ms per frame spinning, 5 ms not)."""
        ort = import_onnxruntime()
        check_model_file(path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads  # 0 = ORT's choice (all cores)
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry(SPIN_KEY, "1" if spin else "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(path, opts, providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types for unreadable/invalid graphs
            raise ModelError(f"{path}: ONNX Runtime cannot load it ({first_line(exc)}); if `make models` made it, "
                             "run it again (it rebuilds damaged files)") from exc
        self.path = path
        self.inputs = {i.name: _spec(i) for i in self._session.get_inputs()}
        self.outputs = {o.name: _spec(o) for o in self._session.get_outputs()}
        self.metadata = dict(self._session.get_modelmeta().custom_metadata_map)
        self._output_names = list(self.outputs)

    def infer(self, feed: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        missing = set(self.inputs) - set(feed)
        if missing:
            raise EngineError(f"{self.path}: missing inputs {sorted(missing)}; expected {sorted(self.inputs)}")
        results = self._session.run(self._output_names, dict(feed))
        return dict(zip(self._output_names, results))


def import_onnxruntime() -> Any:
    """The onnxruntime module, or a one-line EngineError that tells a missing package from a broken one.

    An import interrupted by Ctrl-C comes back as ImportError (pybind11 wraps what module init raises),
    so the interrupt it wraps is raised again rather than reported as a missing package."""
    try:
        import onnxruntime
    except ImportError as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, KeyboardInterrupt):
            raise cause from None
        if importlib.util.find_spec("onnxruntime") is None:
            raise EngineError("onnxruntime is not installed: pip install onnxruntime") from exc
        raise EngineError(f"onnxruntime is installed but does not import ({first_line(exc)}); reinstall it: "
                          "pip install --force-reinstall onnxruntime") from exc
    return onnxruntime


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def check_model_file(path: str) -> None:
    """Fail early, with the file's name, on a missing, empty or non-ONNX file."""
    if not os.path.isfile(path):
        raise ModelError(f"{path}: model file not found; run `make models` (or pass the right path)")
    size = os.path.getsize(path)
    if size == 0:
        raise ModelError(f"{path}: model file is empty; run `make models` (it rebuilds damaged files) or pass the "
                         "right path")


def _spec(node: object) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else None for d in node.shape)  # type: ignore[attr-defined]
    return TensorSpec(node.name, shape, np.dtype(_ORT_TYPES.get(node.type, np.float32)))  # type: ignore[attr-defined]
