"""The process's one CUDA context and stream, shared by the TensorRT engines and GPU pre-processing.

pycuda is imported lazily (one-line EngineError when missing). We retain the device's *primary*
context, the one TensorRT's runtime API uses too, and push it only around GPU work in whichever
thread does it: the camera reader thread never touches CUDA, and exit or an error always pops
and detaches (no leaked context).
"""
from __future__ import annotations

import atexit
import threading
from contextlib import contextmanager
from typing import Any, Iterator, Optional

from edge.runtime.trt_compat import import_pycuda


class CudaContext:
    def __init__(self, device: int = 0) -> None:
        self.cuda = import_pycuda()
        self.cuda.init()
        self.device = self.cuda.Device(device)
        self._ctx: Optional[Any] = self.device.retain_primary_context()
        self._local = threading.local()
        with self.active():
            self.stream = self.cuda.Stream()

    @property
    def integrated(self) -> bool:
        """Jetson: the GPU shares host memory, so mapped pinned buffers need no copies."""
        attr = self.cuda.device_attribute
        return bool(self.device.get_attribute(attr.INTEGRATED)) and bool(
            self.device.get_attribute(attr.CAN_MAP_HOST_MEMORY))

    @contextmanager
    def active(self) -> Iterator["CudaContext"]:
        """Push the context for this thread (re-entrant), pop on the way out, error or not."""
        depth = getattr(self._local, "depth", 0)
        if depth == 0:
            if self._ctx is None:
                raise RuntimeError("CUDA context already closed")
            self._ctx.push()
        self._local.depth = depth + 1
        try:
            yield self
        finally:
            self._local.depth = depth
            if depth == 0:
                self.cuda.Context.pop()

    def synchronize(self) -> None:
        with self.active():
            self.stream.synchronize()

    def close(self) -> None:
        if self._ctx is not None:
            with self.active():
                self.stream.synchronize()
            self._ctx.detach()
            self._ctx = None


_shared: Optional[CudaContext] = None
_lock = threading.Lock()


def shared_context() -> CudaContext:
    """One context per process, made on first use and detached at exit (`close_shared_context`)."""
    global _shared
    with _lock:
        if _shared is None:
            _shared = CudaContext()
            atexit.register(close_shared_context)
        return _shared


def close_shared_context() -> None:
    global _shared
    with _lock:
        if _shared is not None:
            _shared.close()
            _shared = None
