"""The one Engine interface every backend implements: name-keyed numpy arrays in and out.

Backends know nothing about faces; the ATPN/detector contracts are checked by their callers.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Protocol, Tuple, runtime_checkable

import numpy as np

from edge.errors import ModelError

if TYPE_CHECKING:
    from edge.runtime.cuda import CudaContext

Shape = Tuple[Optional[int], ...]  # None marks a dynamic axis


def metadata_object(model: str, key: str, text: str, fix: str) -> Dict[str, Any]:
    """The JSON object a model file keeps under metadata `key`; a one-line ModelError ending in `fix` when
    it is anything else (a model file's metadata can hold any string)."""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ModelError(f"{model}: its '{key}' metadata is not the JSON object {fix}")
    return data


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: Shape
    dtype: np.dtype

    def describe(self) -> str:
        dims = ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}[{dims}] {np.dtype(self.dtype).name}"


class Engine:
    """Load a model, run batches, close. Use as a context manager."""

    backend = "abstract"
    path: str
    inputs: Dict[str, TensorSpec]
    outputs: Dict[str, TensorSpec]
    metadata: Dict[str, str]

    def infer(self, feed: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the backend's resources; calling it twice is harmless."""

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        ins = ", ".join(t.describe() for t in self.inputs.values())
        outs = ", ".join(t.describe() for t in self.outputs.values())
        return f"{self.backend} {self.path}: in {ins}; out {outs}"


@runtime_checkable
class DeviceEngine(Protocol):
    """What the GPU loop needs of an engine besides `Engine`: input buffers that its kernels fill in place on the
    device, work queued on its one stream, outputs read after the sync. TensorRTEngine is one; tests put a
    real-CUDA stand-in in its place on a GPU without TensorRT. `isinstance` checks the names, not signatures."""

    cuda: CudaContext  # the context and stream its buffers and work belong to
    placement: str  # buffers.ZERO_COPY (mapped host memory) or buffers.STAGED (device memory + copies)

    def device_input(self, name: str) -> int:
        """Device address of input `name`, for a kernel to write the next batch into."""

    def set_batch(self, batch: int) -> None:
        """How many rows the inputs hold this time."""

    def enqueue(self) -> None:
        """Queue the network (and any copies of its outputs to the host) on the stream, behind the kernels."""

    def outputs_view(self) -> Dict[str, np.ndarray]:
        """Host views of the last batch's outputs; valid once the stream is synchronized."""
