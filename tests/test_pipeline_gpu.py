"""The camera loop on TensorRT with GPU pre-processing, against ONNX Runtime (marker `gpu`).

Skips (conftest.py) without TensorRT, pycuda and a CUDA GPU. Tolerances: the GPU warp matches
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
from edge.pipeline.loop import run_loop
from edge.pipeline.outputs import Outputs
from edge.pipeline.sources import VideoFileSource
from edge.pipeline.stats import RunStats

pytestmark = pytest.mark.gpu
FRAMES = 120
MEDIAN_PX = {"fp32": 1.5, "fp16": 3.0}


def test_gpu_warp_matches_the_cpu_warp(astronaut_bgr):
    from edge.pipeline.gpu_crop import GpuCropper
    from edge.runtime.cuda import shared_context

    ctx = shared_context()
    spec = ModelSpec()
    boxes = [CropBox(256, 230, 200), CropBox(250, 240, 260, 25.0), CropBox(30, 30, 150, -60.0)]  # last one: border
    want, want_m = warp_crops(astronaut_bgr, boxes, spec)
    cropper = GpuCropper(ctx, max_batch=len(boxes))
    with ctx.active():
        dst = ctx.cuda.mem_alloc(want.nbytes)
        cropper.upload(astronaut_bgr)
        got_m = cropper.warp(boxes, spec, int(dst))
        got = np.empty_like(want)
        ctx.cuda.memcpy_dtoh_async(got, dst, ctx.stream)
        ctx.stream.synchronize()
        dst.free()
    cropper.close()
    np.testing.assert_allclose(got_m, want_m)
    assert np.abs(got - want).max() <= 1.5 / spec.std


def run_clip(clip: str, backend: str, precision: str) -> List[Dict[int, np.ndarray]]:
    config = load_config(None).with_overrides({"runtime.backend": backend, "runtime.precision": precision,
                                               "source.max_frames": FRAMES})
    per_frame: List[Dict[int, np.ndarray]] = []
    with ExitStack() as stack, VideoFileSource(clip) as source:
        pipeline = open_pipeline(config, stack)
        run_loop(source, pipeline, Outputs(None), RunStats(), FRAMES,
                 on_frame=lambda frame, faces: per_frame.append({f.track_id: f.landmarks_px for f in faces}))
    return per_frame


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
