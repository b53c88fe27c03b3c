"""Buffer planning for the TensorRT backend: pure logic, so it is tested without a GPU.

Every I/O tensor gets one buffer sized for the largest batch of the engine's profile, allocated
once. Where it lives depends on the GPU: an integrated GPU (Jetson) maps pinned host memory into
the device's address space, so the engine reads and writes host memory directly (zero copy); a
discrete GPU gets pinned host buffers plus device buffers and async copies on the loop's stream.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np

from edge.errors import EngineError

ZERO_COPY = "zero-copy"  # mapped pinned host memory, one buffer seen by CPU and GPU
STAGED = "staged"  # pinned host + device buffers, cudaMemcpyAsync on the stream


@dataclass(frozen=True)
class BufferPlan:
    name: str
    is_input: bool
    dtype: np.dtype
    max_shape: Tuple[int, ...]
    placement: str

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.max_shape)) * np.dtype(self.dtype).itemsize

    def shape_for(self, batch: int) -> Tuple[int, ...]:
        return (batch,) + tuple(self.max_shape[1:])


def placement_for(integrated_gpu: bool) -> str:
    """Zero copy where the GPU shares (and can map) host memory, staged copies elsewhere."""
    return ZERO_COPY if integrated_gpu else STAGED


def plan_buffers(tensors: Sequence[Tuple[str, bool, np.dtype, Tuple[int, ...]]], max_batch: int,
                 placement: str) -> List[BufferPlan]:
    """One plan per (name, is_input, dtype, engine shape with -1 for the batch axis)."""
    plans = []
    for name, is_input, dtype, shape in tensors:
        if any(d < 0 for d in shape[1:]):
            raise EngineError(f"tensor '{name}' has dynamic axes besides the batch {tuple(shape)}; re-export the ONNX "
                              "with a fixed crop size")
        first = max_batch if shape[0] < 0 else shape[0]
        plans.append(BufferPlan(name, is_input, np.dtype(dtype), (first,) + tuple(shape[1:]), placement))
    return plans


def check_batch(feed: Mapping[str, np.ndarray], plans: Sequence[BufferPlan], min_batch: int) -> int:
    """The batch of `feed`, checked against the buffers (profile max) and the profile min."""
    batches = set()
    for plan in plans:
        if not plan.is_input:
            continue
        if plan.name not in feed:
            raise EngineError(f"missing input '{plan.name}'; the engine takes {[p.name for p in plans if p.is_input]}")
        arr = feed[plan.name]
        if tuple(arr.shape[1:]) != plan.max_shape[1:]:
            raise EngineError(f"input '{plan.name}' has shape {tuple(arr.shape)}, the engine takes "
                              f"[batch,{','.join(map(str, plan.max_shape[1:]))}]")
        batches.add(int(arr.shape[0]))
    if len(batches) != 1:
        raise EngineError(f"inputs disagree on the batch size: {sorted(batches)}")
    batch = batches.pop()
    top = max(p.max_shape[0] for p in plans)
    if not min_batch <= batch <= top:
        raise EngineError(f"batch {batch} is outside the engine's profile {min_batch}..{top}; rebuild with a wider "
                          f"--batch MIN:OPT:MAX or split the batch")
    return batch


def total_bytes(plans: Sequence[BufferPlan]) -> Dict[str, int]:
    out = {ZERO_COPY: 0, STAGED: 0}
    for p in plans:
        out[p.placement] += p.nbytes
    return out
