"""TensorRT backend: a serialized engine behind the same Engine interface as ONNX Runtime.

Name-based I/O (`num_io_tensors`, `set_input_shape`, `set_tensor_address`, `execute_async_v3`),
the one code path from TensorRT 8.5.1 (JetPack 5.1) through 10.x/11 and TensorRT-RTX (whichever
library `trt_compat.import_tensorrt` finds; the sidecar must name the same). Buffers are planned once for
the profile's largest batch (`buffers.py`): zero-copy mapped memory on Jetson, pinned host plus
device memory and async copies on a discrete GPU. `infer` is the host-to-host path; the GPU loop
writes crops straight into `device_input(...)` and calls `enqueue` + `outputs`, one sync per frame.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from edge.runtime.gpu import query_gpu
from edge.runtime.sidecar import check_engine
from edge.runtime.trt_compat import features_of, import_tensorrt, logger_for
from edge.errors import EngineError
from edge.runtime.base import Engine, TensorSpec
from edge.runtime.buffers import STAGED, ZERO_COPY, BufferPlan, check_batch, placement_for, plan_buffers
from edge.runtime.cuda import CudaContext, shared_context

if TYPE_CHECKING:  # the tensorrt-stubs package: `make lint` checks our TensorRT calls against it
    import tensorrt

# trt.nptype is avoided on purpose: it refers to np.bool, which numpy >= 1.24 removed (JetPack 5).
_DTYPES = (("FLOAT", np.float32), ("HALF", np.float16), ("INT8", np.int8), ("INT32", np.int32),
           ("INT64", np.int64), ("BOOL", np.bool_), ("UINT8", np.uint8))


def numpy_dtype(trt: Any, trt_dtype: Any) -> np.dtype:
    for name, np_type in _DTYPES:
        if hasattr(trt.DataType, name) and trt_dtype == getattr(trt.DataType, name):
            return np.dtype(np_type)
    raise EngineError(f"tensor type {trt_dtype} has no numpy equivalent here; export the model with float32 I/O")


class _Buffer:
    """One tensor's memory: a host array the CPU reads/writes and the address the engine uses."""

    def __init__(self, cuda: Any, plan: BufferPlan) -> None:
        self.plan = plan
        self._device: Optional[Any] = None
        if plan.placement == ZERO_COPY:
            self.host = cuda.pagelocked_empty(plan.max_shape, plan.dtype, mem_flags=cuda.host_alloc_flags.DEVICEMAP)
            self.address = int(self.host.base.get_device_pointer())
        else:
            self.host = cuda.pagelocked_empty(plan.max_shape, plan.dtype)
            self._device = cuda.mem_alloc(plan.nbytes)
            self.address = int(self._device)

    def free(self) -> None:
        if self._device is not None:
            self._device.free()
            self._device = None


class TensorRTEngine(Engine):
    backend = "tensorrt"

    def __init__(self, path: str, context: Optional[CudaContext] = None) -> None:
        trt = import_tensorrt()
        side = check_engine(path, features_of(trt).tag, query_gpu())
        self.path = path
        self.metadata = dict(side.onnx_metadata)
        self.cuda = context or shared_context()
        self._buffers: Dict[str, _Buffer] = {}
        with self.cuda.active():
            self._runtime: "tensorrt.Runtime" = trt.Runtime(logger_for(trt))
            with open(path, "rb") as f:
                engine: Optional["tensorrt.ICudaEngine"] = self._runtime.deserialize_cuda_engine(f.read())
            if engine is None:
                raise EngineError(f"{path}: TensorRT could not deserialize it (corrupt file?); rebuild it with "
                                  f"`{side.request.command()}`")
            self._engine = engine
            self._context: "tensorrt.IExecutionContext" = engine.create_execution_context()
            tensors: List[Tuple[str, bool, np.dtype, Tuple[int, ...]]] = []
            for i in range(self._engine.num_io_tensors):
                name = self._engine.get_tensor_name(i)
                is_input = self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
                shape = self._engine.get_tensor_shape(name)
                tensors.append((name, is_input, numpy_dtype(trt, self._engine.get_tensor_dtype(name)),
                                tuple(shape[i] for i in range(len(shape)))))
            profile = side.key.profile
            self.min_batch = min((s["min"][0] for s in profile.values()), default=1)
            max_batch = max((s["max"][0] for s in profile.values()), default=1)
            self.placement = placement_for(self.cuda.integrated)
            plans = plan_buffers(tensors, max_batch, self.placement)
            for plan in plans:
                buf = _Buffer(self.cuda.cuda, plan)
                self._buffers[plan.name] = buf
                self._context.set_tensor_address(plan.name, buf.address)
        self._plans: List[BufferPlan] = plans
        self.inputs = {p.name: TensorSpec(p.name, (None,) + p.max_shape[1:], p.dtype) for p in plans if p.is_input}
        self.outputs = {p.name: TensorSpec(p.name, (None,) + p.max_shape[1:], p.dtype) for p in plans if not p.is_input}
        self._batch = 0

    def device_input(self, name: str) -> int:
        """Device address of an input buffer, for kernels that fill it in place (GPU pre-processing)."""
        return self._buffers[name].address

    def set_batch(self, batch: int) -> None:
        """Tell the engine how many rows the inputs hold this time (within the profile)."""
        if batch != self._batch:
            for plan in self._plans:
                if plan.is_input and not self._context.set_input_shape(plan.name, plan.shape_for(batch)):
                    raise EngineError(f"{self.path}: batch {batch} rejected for '{plan.name}' (profile "
                                      f"{self.min_batch}..{plan.max_shape[0]})")
            self._batch = batch

    def enqueue(self, upload_inputs: bool = False) -> None:
        """Queue the network (and, on a discrete GPU, the output copies) on the stream; no sync."""
        cuda, stream, b = self.cuda.cuda, self.cuda.stream, self._batch
        if upload_inputs and self.placement == STAGED:
            for name, buf in self._buffers.items():
                if buf.plan.is_input:
                    cuda.memcpy_htod_async(buf.address, buf.host[:b], stream)
        if not self._context.execute_async_v3(stream.handle):
            raise EngineError(f"{self.path}: TensorRT failed to enqueue the batch (its log above says why)")
        if self.placement == STAGED:
            for buf in self._buffers.values():
                if not buf.plan.is_input:
                    cuda.memcpy_dtoh_async(buf.host[:b], buf.address, stream)

    def outputs_view(self) -> Dict[str, np.ndarray]:
        """Host views of the outputs of the last batch; valid after the stream sync, until the next run."""
        return {n: b.host[:self._batch] for n, b in self._buffers.items() if not b.plan.is_input}

    def infer(self, feed: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        batch = check_batch(feed, self._plans, self.min_batch)
        with self.cuda.active():
            for plan in self._plans:
                if plan.is_input:
                    np.copyto(self._buffers[plan.name].host[:batch], feed[plan.name], casting="same_kind")
            self.set_batch(batch)
            self.enqueue(upload_inputs=True)
            self.cuda.stream.synchronize()
            return {n: a.copy() for n, a in self.outputs_view().items()}

    def close(self) -> None:
        if not self._buffers:
            return
        with self.cuda.active():
            self.cuda.stream.synchronize()
            for buf in self._buffers.values():
                buf.free()
            self._buffers = {}
            del self._context, self._engine, self._runtime  # TensorRT objects die inside the context
