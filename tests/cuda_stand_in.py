"""A real-CUDA stand-in for TensorRTEngine, so the GPU loop's own logic is tested on a GPU without TensorRT.

Real: the CUDA context and stream (the loop's, `shared_context()`), the input buffers, made by TensorRTEngine's
own `_Buffer` (device memory when staged, mapped pinned host memory when zero-copy) and filled there by the
loop's warp kernel, the events that time each call, and the hand-off: `enqueue` queues the input's copy to the
host on the stream behind the kernel (staged; zero-copy reads the mapped buffer itself) and waits for it.
Standing in for TensorRT: the network, which ONNX Runtime runs on the CPU on that copy (the same ONNX file the
CPU loop runs, so the two loops must agree), into pinned host outputs. Unlike TensorRT's, this `enqueue`
returns only when the outputs are there: the CPU needs the input before it can start.
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional

import numpy as np

from edge.errors import EngineError
from edge.runtime.base import Engine
from edge.runtime.buffers import STAGED, plan_buffers
from edge.runtime.cuda import CudaContext, shared_context
from edge.runtime.onnxrt import OnnxRuntimeEngine
from edge.runtime.tensorrt import _Buffer


class CudaStandIn(Engine):
    backend = "cuda-stand-in"

    def __init__(self, path: str, placement: str, max_batch: int, context: Optional[CudaContext] = None) -> None:
        self.model = OnnxRuntimeEngine(path)
        self.path, self.metadata = path, self.model.metadata
        self.inputs, self.outputs = self.model.inputs, self.model.outputs
        self.cuda = context or shared_context()
        self.placement = placement
        self.calls = 0  # enqueues, to check the loop timed each one
        specs = list(self.inputs.values()) + list(self.outputs.values())
        plans = plan_buffers([(t.name, t.name in self.inputs, t.dtype, tuple(-1 if d is None else d for d in t.shape))
                              for t in specs], max_batch, placement)
        self._max_batch = max_batch
        with self.cuda.active():
            self._inputs = {p.name: _Buffer(self.cuda.cuda, p) for p in plans if p.is_input}
            self._outputs = {p.name: self.cuda.cuda.pagelocked_empty(p.max_shape, p.dtype) for p in plans
                             if not p.is_input}
        self._batch = 0

    def device_input(self, name: str) -> int:
        return self._inputs[name].address

    def set_batch(self, batch: int) -> None:
        if not 1 <= batch <= self._max_batch:
            raise EngineError(f"{self.path}: batch {batch} is outside 1..{self._max_batch}")
        self._batch = batch

    def enqueue(self) -> None:
        cuda, stream, b = self.cuda.cuda, self.cuda.stream, self._batch
        if self.placement == STAGED:
            for buf in self._inputs.values():
                cuda.memcpy_dtoh_async(buf.host[:b], buf.address, stream)
        stream.synchronize()
        out = self.model.infer({name: buf.host[:b] for name, buf in self._inputs.items()})
        for name, host in self._outputs.items():
            host[:b] = out[name]
        self.calls += 1

    def outputs_view(self) -> Dict[str, np.ndarray]:
        return {name: host[:self._batch] for name, host in self._outputs.items()}

    def infer(self, feed: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """The host-to-host path, which the GPU loop never takes: ONNX Runtime alone."""
        return self.model.infer(feed)

    def close(self) -> None:
        if not self._inputs:
            return
        with self.cuda.active():
            self.cuda.stream.synchronize()
            for buf in self._inputs.values():
                buf.free()
            self._inputs, self._outputs = {}, {}  # pinned memory goes back inside its context
        self.model.close()
