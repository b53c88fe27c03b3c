"""GPU pre-processing: the frame goes to the device once; crops are warped there.

One CUDA kernel does what `crop.warp_crops` does on the CPU — inverse affine map, bilinear
sampling with a black border (cv2.warpAffine INTER_LINEAR + BORDER_CONSTANT), BGR->RGB,
(x - mean) / std — for a whole batch, writing straight into an engine's input buffer. The
detector's letterbox is an affine map too, so the same kernel feeds BlazeFace.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import numpy as np

from edge.model.spec import ModelSpec
from edge.model.crop import CropBox, crop_matrix, invert_matrices
from edge.runtime.buffers import ZERO_COPY, placement_for
from edge.runtime.cuda import CudaContext
from edge.runtime.kernels import load_kernel

KERNEL = r"""
extern "C" __global__ void warp_affine_normalize(
    const unsigned char* __restrict__ src, int src_h, int src_w, int src_pitch,
    const float* __restrict__ inv, float* __restrict__ dst, int out_size, float mean, float inv_std, int batch)
{
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    const int b = blockIdx.z;
    if (x >= out_size || y >= out_size || b >= batch) return;
    const float* m = inv + 6 * b;  // crop pixel -> frame pixel
    const float sx = m[0] * x + m[1] * y + m[2];
    const float sy = m[3] * x + m[4] * y + m[5];
    const int x0 = (int)floorf(sx), y0 = (int)floorf(sy);
    const float fx = sx - x0, fy = sy - y0;
    float acc[3] = {0.f, 0.f, 0.f};
    for (int dy = 0; dy < 2; ++dy) {
        const int yy = y0 + dy;
        if (yy < 0 || yy >= src_h) continue;
        const float wy = dy ? fy : 1.f - fy;
        for (int dx = 0; dx < 2; ++dx) {
            const int xx = x0 + dx;
            if (xx < 0 || xx >= src_w) continue;
            const float w = wy * (dx ? fx : 1.f - fx);
            const unsigned char* p = src + yy * src_pitch + 3 * xx;
            acc[0] += w * p[0]; acc[1] += w * p[1]; acc[2] += w * p[2];
        }
    }
    const int plane = out_size * out_size;
    float* o = dst + (size_t)b * 3 * plane + y * out_size + x;
    o[0] = (acc[2] - mean) * inv_std;          // R
    o[plane] = (acc[1] - mean) * inv_std;      // G
    o[2 * plane] = (acc[0] - mean) * inv_std;  // B
}
"""
BLOCK = (16, 16, 1)


def launch_grid(out_size: int, batch: int) -> Tuple[int, int, int]:
    """Blocks covering out_size x out_size pixels for each of `batch` crops."""
    n = (out_size + BLOCK[0] - 1) // BLOCK[0]
    return (n, n, batch)


class GpuCropper:
    """Holds the frame on the device (allocated once per frame size) and warps batches from it.

    `placement` defaults to zero copy on an integrated GPU (Jetson) and staged copies elsewhere;
    a discrete GPU can map pinned host memory too, which is how the Jetson path is tested on x86.
    """

    def __init__(self, ctx: CudaContext, max_batch: int, placement: Optional[str] = None) -> None:
        self.ctx = ctx
        self.cuda = ctx.cuda
        self._kernel = load_kernel(ctx, KERNEL, "warp_affine_normalize")  # compiled once per machine, then cached
        with ctx.active():
            self._inv_host = self.cuda.pagelocked_empty((max_batch, 6), np.float32)
            self._inv_dev = self.cuda.mem_alloc(self._inv_host.nbytes)
            self._uploaded = self.cuda.Event(self.cuda.event_flags.DISABLE_TIMING)  # events belong to a context
        self.placement = placement or placement_for(ctx.integrated)
        self._frame_shape: Tuple[int, ...] = ()
        self._frame_host: Any = None
        self._frame_dev: Any = None
        self._frame_addr = 0

    def upload(self, frame_bgr: np.ndarray) -> None:
        """The frame's one trip to the GPU (none on Jetson: the buffer is mapped)."""
        with self.ctx.active():
            self._uploaded.synchronize()  # the last frame's async copy may still read the pinned buffer
            if frame_bgr.shape != self._frame_shape:
                self._allocate(frame_bgr.shape)
            np.copyto(self._frame_host, frame_bgr)
            if self.placement != ZERO_COPY:
                self.cuda.memcpy_htod_async(self._frame_addr, self._frame_host, self.ctx.stream)
                self._uploaded.record(self.ctx.stream)

    def warp(self, boxes: Sequence[CropBox], spec: ModelSpec, dst_address: int) -> np.ndarray:
        """Queue the crops of `boxes` into `dst_address` ([B,3,S,S] float32); returns the frame->crop matrices."""
        size = spec.input_size
        fwd = np.stack([crop_matrix(b, size) for b in boxes])
        b = len(boxes)
        self._inv_host[:b] = invert_matrices(fwd).reshape(b, 6)
        with self.ctx.active():
            self.cuda.memcpy_htod_async(self._inv_dev, self._inv_host[:b], self.ctx.stream)
            h, w = self._frame_shape[:2]
            self._kernel(np.intp(self._frame_addr), np.int32(h), np.int32(w), np.int32(w * 3), self._inv_dev,
                         np.intp(dst_address), np.int32(size), np.float32(spec.mean), np.float32(1.0 / spec.std),
                         np.int32(b), block=BLOCK, grid=launch_grid(size, b), stream=self.ctx.stream)
        return fwd

    def _allocate(self, shape: Tuple[int, ...]) -> None:
        self._free_frame()
        if self.placement == ZERO_COPY:
            self._frame_host = self.cuda.pagelocked_empty(shape, np.uint8, mem_flags=self.cuda.host_alloc_flags.DEVICEMAP)
            self._frame_addr = int(self._frame_host.base.get_device_pointer())
        else:
            self._frame_host = self.cuda.pagelocked_empty(shape, np.uint8)
            self._frame_dev = self.cuda.mem_alloc(self._frame_host.nbytes)
            self._frame_addr = int(self._frame_dev)
        self._frame_shape = tuple(shape)

    def _free_frame(self) -> None:
        if self._frame_dev is not None:
            self._frame_dev.free()
        self._frame_dev = self._frame_host = None

    def close(self) -> None:
        with self.ctx.active():
            self.ctx.stream.synchronize()
            self._free_frame()
            self._inv_dev.free()
            self._uploaded = None  # destroyed while its context is current
