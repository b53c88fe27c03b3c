#!/usr/bin/env python
"""Pre-processing per frame: the CPU warp (`crop.warp_crops`) against the GPU kernel (`GpuCropper`).

For each frame size and crop batch (ATPN crops at 112 px, or the detector's 128 px letterbox), the
GPU figure is wall time for what the loop does per frame: copy the frame in (staged; on Jetson the
frame is mapped instead), warp the batch into a device buffer, wait for the stream; the kernel's own
time comes from CUDA events. Medians over `--iters` frames after a warm-up. Needs pycuda and a CUDA
GPU. Results: a table on stdout and JSON lines in `--out`.
Usage: python bench/bench_gpu_crop.py [--clip ../shared/data/clips/hamilton_640x360.mp4] [--iters 300]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from edge.runtime.gpu import query_gpu  # noqa: E402
from edge.errors import EdgeError  # noqa: E402
from edge.model.spec import ModelSpec  # noqa: E402
from edge.model.crop import CropBox, warp_crops  # noqa: E402
from edge.detectors.blazeface import detector_pixels, letterbox  # noqa: E402
from edge.pipeline.gpu_crop import GpuCropper  # noqa: E402
from edge.runtime.cuda import shared_context  # noqa: E402

DETECTOR_PIXELS = detector_pixels(128)  # BlazeFace short-range's input


def median_ms(fn: Callable[[], object], iters: int) -> float:
    for _ in range(20):
        fn()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def face_boxes(frame: np.ndarray, n: int) -> List[CropBox]:
    """n face-sized crops spread over the frame, some rotated, as a multi-face frame would have."""
    h, w = frame.shape[:2]
    side = 0.35 * min(h, w)
    return [CropBox(w * (i + 1) / (n + 1), h / 2.0, side, 15.0 * (i % 3 - 1)) for i in range(n)]


def measure(frame: np.ndarray, boxes: List[CropBox], spec: ModelSpec, iters: int) -> Dict[str, float]:
    ctx = shared_context()
    cropper = GpuCropper(ctx, max_batch=len(boxes))
    kernel_ms: List[float] = []
    with ctx.active():
        start, end = ctx.cuda.Event(), ctx.cuda.Event()
        dst = ctx.cuda.mem_alloc(len(boxes) * 3 * spec.input_size ** 2 * 4)

        def gpu_frame() -> None:
            cropper.upload(frame)
            start.record(ctx.stream)
            cropper.warp(boxes, spec, int(dst))
            end.record(ctx.stream)
            ctx.stream.synchronize()
            kernel_ms.append(end.time_since(start))

        gpu = median_ms(gpu_frame, iters)
        dst.free()
    cropper.close()
    cpu = median_ms(lambda: warp_crops(frame, boxes, spec), iters)
    return {"cpu_ms": cpu, "gpu_ms": gpu, "gpu_kernel_ms": statistics.median(kernel_ms[20:]), "speedup": cpu / gpu}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clip", default="../shared/data/clips/hamilton_640x360.mp4", help="a frame source (video file)")
    ap.add_argument("--iters", type=int, default=300, help="timed frames per configuration (default: %(default)s)")
    ap.add_argument("--out", default="out/bench_gpu_crop.jsonl", help="JSON lines (default: %(default)s)")
    args = ap.parse_args()
    try:
        gpu = query_gpu()
        ok, frame = cv2.VideoCapture(args.clip).read()
        if not ok:
            raise EdgeError(f"{args.clip}: cannot read a frame; give --clip a video file")
        rows = []
        for size in ((640, 360), (1920, 1080)):
            image = cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)
            for what, boxes, spec in [("detector letterbox", [letterbox(image.shape)], DETECTOR_PIXELS)] + [
                    (f"ATPN x{n}", face_boxes(image, n), ModelSpec()) for n in (1, 4, 8)]:
                row = {"gpu": gpu.describe(), "frame": f"{size[0]}x{size[1]}", "crops": what,
                       **measure(image, boxes, spec, args.iters)}
                rows.append(row)
                print(f"{row['frame']:>9}  {what:<18}  CPU {row['cpu_ms']:6.3f} ms  GPU {row['gpu_ms']:6.3f} ms "
                      f"(kernel {row['gpu_kernel_ms']:.3f})  x{row['speedup']:.1f}", flush=True)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        print(f"{gpu.describe()}: {len(rows)} configurations -> {args.out}")
    except EdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
