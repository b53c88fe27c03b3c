"""The camera loop on TensorRT with GPU pre-processing, against ONNX Runtime (marker `gpu`).

Skips (conftest.py) without pycuda and a CUDA GPU; the loop tests (marker `tensorrt`) without
TensorRT too. Tolerances: the GPU warp matches
cv2.warpAffine to about one grey level (OpenCV interpolates in fixed point); the loop's landmarks
match the CPU loop within 1.5 px median on the real clip at FP32, 3 px at FP16.
"""
from __future__ import annotations

from contextlib import ExitStack
from typing import Dict, List

import numpy as np
import pytest

from conftest import model_path
from edge.config import load_config
from edge.model.spec import ModelSpec
from edge.pipeline.app import open_pipeline
from edge.pipeline.crop import CropBox, warp_crops
from edge.pipeline.detector import detector_pixels, letterbox
from edge.pipeline.loop import run_loop
from edge.pipeline.outputs import Outputs
from edge.pipeline.sources import VideoFileSource
from edge.pipeline.stats import RunStats
from edge.runtime.buffers import STAGED, ZERO_COPY

pytestmark = pytest.mark.gpu
FRAMES = 120
MEDIAN_PX = {"fp32": 1.5, "fp16": 3.0}


def gpu_warp(image: np.ndarray, boxes, spec: ModelSpec, placement: str):
    """`GpuCropper.warp` of `boxes` into a device buffer, copied back: (crops, frame->crop matrices)."""
    from edge.pipeline.gpu_crop import GpuCropper
    from edge.runtime.cuda import shared_context

    ctx = shared_context()
    cropper = GpuCropper(ctx, max_batch=len(boxes), placement=placement)
    got = np.empty((len(boxes), 3, spec.input_size, spec.input_size), np.float32)
    with ctx.active():
        dst = ctx.cuda.mem_alloc(got.nbytes)
        cropper.upload(image)
        matrices = cropper.warp(boxes, spec, int(dst))
        ctx.cuda.memcpy_dtoh_async(got, dst, ctx.stream)
        ctx.stream.synchronize()
        dst.free()
    cropper.close()
    return got, matrices


@pytest.mark.parametrize("placement", [STAGED, ZERO_COPY])  # zero copy: Jetson's mapped frame, on any GPU
def test_gpu_warp_matches_the_cpu_warp(astronaut_bgr, placement):
    spec = ModelSpec()
    boxes = [CropBox(256, 230, 200), CropBox(250, 240, 260, 25.0), CropBox(30, 30, 150, -60.0)]  # last one: border
    want, want_m = warp_crops(astronaut_bgr, boxes, spec)
    got, got_m = gpu_warp(astronaut_bgr, boxes, spec, placement)
    np.testing.assert_allclose(got_m, want_m)
    assert np.abs(got - want).max() <= 1.5 / spec.std


def test_gpu_letterbox_matches_the_detector_input(astronaut_bgr):
    """The detector's letterbox of a wide frame (black bars) through the same kernel."""
    frame = np.concatenate([astronaut_bgr[:288], astronaut_bgr[:288, ::-1]], axis=1)  # 1024x288
    pixels = detector_pixels(128)
    want, _ = warp_crops(frame, [letterbox(frame.shape)], pixels)
    got, _ = gpu_warp(frame, [letterbox(frame.shape)], pixels, STAGED)
    assert np.abs(got - want).max() <= 1.5 / pixels.std


def test_cuda_context_is_pushed_per_thread_and_closes():
    import threading

    from edge.runtime.cuda import CudaContext

    ctx = CudaContext()
    with ctx.active(), ctx.active():  # re-entrant: the inner one neither pushes nor pops
        buf = ctx.cuda.mem_alloc(1024)
    seen = []

    def worker() -> None:
        with ctx.active():
            seen.append(ctx.cuda.Context.get_device().name())
            ctx.cuda.memset_d8(buf, 7, 1024)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    host = np.zeros(1024, np.uint8)
    with ctx.active():
        ctx.cuda.memcpy_dtoh(host, buf)
        buf.free()
    assert seen and seen[0] == ctx.device.name() and (host == 7).all()
    ctx.close()
    with pytest.raises(RuntimeError, match="closed"):
        with ctx.active():
            pass


def run_clip(clip: str, backend: str, precision: str) -> List[Dict[int, np.ndarray]]:
    config = load_config(None).with_overrides({"runtime.backend": backend, "runtime.precision": precision,
                                               "source.max_frames": FRAMES})
    per_frame: List[Dict[int, np.ndarray]] = []
    with ExitStack() as stack, VideoFileSource(clip) as source:
        pipeline = open_pipeline(config, stack)
        run_loop(source, pipeline, Outputs(None), RunStats(), FRAMES,
                 on_frame=lambda frame, faces: per_frame.append({f.track_id: f.landmarks_px for f in faces}))
    return per_frame


@pytest.mark.tensorrt
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_loop_matches_onnxruntime_on_the_clip(hamilton_clip, precision):
    for name in ("atpn68.onnx", "blazeface_full.onnx"):
        model_path(name)  # skips when `make models` has not run
    cpu = run_clip(str(hamilton_clip), "onnxruntime", "fp32")
    gpu = run_clip(str(hamilton_clip), "tensorrt", precision)
    assert len(gpu) == len(cpu) == FRAMES
    both = [(c, g) for c, g in zip(cpu, gpu) if c and g]
    found_cpu, found_gpu = sum(bool(c) for c in cpu), sum(bool(g) for g in gpu)
    assert abs(found_cpu - found_gpu) <= 0.05 * FRAMES, (found_cpu, found_gpu)
    dists = [np.linalg.norm(next(iter(c.values())) - next(iter(g.values())), axis=1).mean() for c, g in both]
    assert dists and np.median(dists) <= MEDIAN_PX[precision], np.median(dists)
