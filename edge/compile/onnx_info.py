"""What the build needs to know of an ONNX file before TensorRT sees it: inputs, metadata, hash, Q/DQ."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Dict

from edge.runtime.engine_request import Shape

_QDQ_OPS = (b"QuantizeLinear", b"DequantizeLinear")


@dataclass(frozen=True)
class OnnxInfo:
    path: str
    sha256: str
    inputs: Dict[str, Shape]
    metadata: Dict[str, str]
    has_qdq: bool


def inspect_onnx(path: str) -> OnnxInfo:
    """Inputs, custom metadata and sha256 of an ONNX file; ModelError for a missing or non-ONNX file."""
    from edge.runtime.onnxrt import OnnxRuntimeEngine

    with OnnxRuntimeEngine(path, threads=1) as engine:  # checks existence, emptiness, and that it parses
        inputs = {name: spec.shape for name, spec in engine.inputs.items()}
        metadata = dict(engine.metadata)
    with open(path, "rb") as f:
        data = f.read()
    has_qdq = all(op in data for op in _QDQ_OPS)  # op_type strings sit verbatim in the protobuf
    return OnnxInfo(path, hashlib.sha256(data).hexdigest(), inputs, metadata, has_qdq)
