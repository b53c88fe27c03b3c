"""ONNX Runtime backend: the embedded default (CPU)."""
from __future__ import annotations

import os
from typing import Dict, List, Mapping, Optional

import numpy as np

from edge.errors import EngineError, ModelError
from edge.runtime.base import Engine, TensorSpec

_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(uint8)": np.uint8,
              "tensor(int8)": np.int8, "tensor(int32)": np.int32, "tensor(int64)": np.int64}


class OnnxRuntimeEngine(Engine):
    backend = "onnxruntime"

    def __init__(self, path: str, threads: int = 0, providers: Optional[List[str]] = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise EngineError("onnxruntime is not installed: pip install onnxruntime") from exc
        check_model_file(path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads  # 0 = ORT's choice (all cores)
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(path, opts, providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types for unreadable/invalid graphs
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{path}: ONNX Runtime cannot load it ({first})") from exc
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


def check_model_file(path: str) -> None:
    """Fail early, with the file's name, on a missing, empty or non-ONNX file."""
    if not os.path.isfile(path):
        raise ModelError(f"{path}: model file not found; run `make models` (or pass the right path)")
    size = os.path.getsize(path)
    if size == 0:
        raise ModelError(f"{path}: model file is empty; re-export it with `python -m edge.model.export --out {path}`")


def _spec(node: object) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else None for d in node.shape)  # type: ignore[attr-defined]
    return TensorSpec(node.name, shape, np.dtype(_ORT_TYPES.get(node.type, np.float32)))  # type: ignore[attr-defined]
