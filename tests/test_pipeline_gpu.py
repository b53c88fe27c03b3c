"""The camera loop on the GPU (GPU pre-processing, one stream, device engines) against the CPU loop.

Tests marked `gpu` skip (conftest.py) without pycuda and a CUDA GPU; those also marked `tensorrt`
without TensorRT too. On a GPU without TensorRT the loop runs on `cuda_stand_in.CudaStandIn`
engines: real CUDA buffers, stream, events and hand-off, with ONNX Runtime as the network. The
unmarked tests check on any machine what needs no GPU: which engines the loop takes, and where its
CUDA events are made. Tolerances: the GPU warp matches cv2.warpAffine to about one grey level
(OpenCV interpolates in fixed point); the loop's landmarks match the CPU loop within 1.5 px median
at FP32 (0.2 px expected: a CPU emulation of the kernel's float warp gives 0.02 px on the demo
sequence and 0.19 px on the clip, with the same faces on every frame), 3 px at FP16.
"""
from __future__ import annotations

from contextlib import ExitStack, contextmanager
from types import SimpleNamespace
from typing import Dict, Iterator, List, Tuple

import numpy as np
import pytest

from conftest import model_path
from cuda_stand_in import CudaStandIn
from edge.config import StillsConfig, load_config
from edge.model.spec import ModelSpec
from edge.app import run as app
from edge.model.crop import CropBox, warp_crops
from edge.io.demo import render_demo_frame
from edge.detectors.blazeface import detector_pixels, letterbox
from edge.pipeline.gpu_loop import GpuFacePipeline, GpuTimer
from edge.pipeline.loop import FacePipeline, run_loop
from edge.io.sinks import Sinks
from edge.io.sources import MemorySource, VideoFileSource
from edge.pipeline.stats import RunStats
from edge.runtime.buffers import STAGED, ZERO_COPY

FRAMES = 120
MEDIAN_PX = {"fp32": 1.5, "fp16": 3.0}
Landmarks = List[Dict[int, np.ndarray]]  # per frame: track ID -> [N,2] frame px


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


@pytest.mark.gpu
@pytest.mark.parametrize("placement", [STAGED, ZERO_COPY])  # zero copy: Jetson's mapped frame, on any GPU
def test_gpu_warp_matches_the_cpu_warp(astronaut_bgr, placement):
    spec = ModelSpec()
    boxes = [CropBox(256, 230, 200), CropBox(250, 240, 260, 25.0), CropBox(30, 30, 150, -60.0)]  # last one: border
    want, want_m = warp_crops(astronaut_bgr, boxes, spec)
    got, got_m = gpu_warp(astronaut_bgr, boxes, spec, placement)
    np.testing.assert_allclose(got_m, want_m)
    assert np.abs(got - want).max() <= 1.5 / spec.std


@pytest.mark.gpu
def test_gpu_letterbox_matches_the_detector_input(astronaut_bgr):
    """The detector's letterbox of a wide frame (black bars) through the same kernel."""
    frame = np.concatenate([astronaut_bgr[:288], astronaut_bgr[:288, ::-1]], axis=1)  # 1024x288
    pixels = detector_pixels(128)
    want, _ = warp_crops(frame, [letterbox(frame.shape)], pixels)
    got, _ = gpu_warp(frame, [letterbox(frame.shape)], pixels, STAGED)
    assert np.abs(got - want).max() <= 1.5 / pixels.std


@pytest.mark.gpu
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


@pytest.fixture(scope="module", params=["demo", "clip"])
def frames(request) -> List[np.ndarray]:
    """The demo sequence (the astronaut, one face panned, zoomed and rolled) and the real clip (several faces)."""
    if request.param == "demo":
        photo = request.getfixturevalue("astronaut_bgr")
        return [render_demo_frame(photo, i) for i in range(FRAMES)]
    with VideoFileSource(str(request.getfixturevalue("hamilton_clip"))) as source:
        return [frame.image for _, frame in zip(range(FRAMES), source)]


def loop_landmarks(pipeline: FacePipeline, frames: List[np.ndarray]) -> Landmarks:
    per_frame: Landmarks = []
    run_loop(MemorySource(frames), pipeline, Sinks(), RunStats(),
             on_frame=lambda frame, faces: per_frame.append({f.track_id: f.landmarks_px for f in faces}))
    return per_frame


def need_models() -> None:
    """Skip (saying how to make them) when `make models` has not run."""
    for name in ("atpn68.onnx", "atpn68_integral.onnx", "blazeface_short.onnx", "blazeface_full.onnx"):
        model_path(name)


def backend_landmarks(frames: List[np.ndarray], backend: str, precision: str = "fp32") -> Landmarks:
    need_models()
    config = load_config(None).with_overrides({"runtime.backend": backend, "runtime.precision": precision})
    with ExitStack() as stack:
        return loop_landmarks(app.open_pipeline(config, stack), frames)


@pytest.fixture(scope="module")
def cpu_landmarks(frames) -> Landmarks:
    return backend_landmarks(frames, "onnxruntime")


def agreement(cpu: Landmarks, gpu: Landmarks) -> Tuple[int, List[float]]:
    """Frames on which the loops found different numbers of faces, and for each face both found (same track ID)
    the mean landmark distance in px."""
    assert len(gpu) == len(cpu) == FRAMES
    differ = sum(len(c) != len(g) for c, g in zip(cpu, gpu))
    dists = [float(np.linalg.norm(c[i] - g[i], axis=1).mean()) for c, g in zip(cpu, gpu) for i in c.keys() & g.keys()]
    return differ, dists


@contextmanager
def stand_in_pipeline(placement: str, monkeypatch) -> Iterator[GpuFacePipeline]:
    """`open_pipeline`'s TensorRT wiring, with CudaStandIn engines (real CUDA, no TensorRT) where it opens engines."""
    config = load_config(None).with_overrides({"runtime.backend": "tensorrt"})
    max_batch = 2 * config.tracker.max_faces  # ATPN's largest batch, mirror averaging included
    need_models()
    monkeypatch.setattr(app, "engine_file", lambda _config, path, *_rest: path)  # the ONNX itself, no engine build
    monkeypatch.setattr(app, "open_engine", lambda path, *_backend_threads_spin: CudaStandIn(path, placement, max_batch))
    with ExitStack() as stack:
        yield app.open_pipeline(config, stack)


@pytest.mark.gpu
@pytest.mark.parametrize("placement", [STAGED, ZERO_COPY])  # zero copy: Jetson's mapped buffers, on any GPU
def test_gpu_loop_on_cuda_stand_ins_matches_the_cpu_loop(frames, cpu_landmarks, placement, monkeypatch):
    """GpuFacePipeline's own logic on a real GPU: frame upload (or mapping), the warp kernel writing into the
    engines' buffers, one stream, events per engine call, the context pushed and popped, outputs after the sync."""
    with stand_in_pipeline(placement, monkeypatch) as pipeline:
        assert isinstance(pipeline, GpuFacePipeline) and pipeline.cropper.placement == placement
        gpu = loop_landmarks(pipeline, frames)
        engines = {"atpn": pipeline.aligner.engine,
                   **{f"detector-{d.name}": d.engine for d in pipeline.detector.detectors}}  # type: ignore[attr-defined]
        assert {name: hist.n for name, hist in pipeline.gpu.ms.items()} == {
            name: e.calls for name, e in engines.items() if e.calls}  # one GPU time per engine call
        assert all(hist.min > 0 for hist in pipeline.gpu.ms.values())
        assert pipeline.ctx.cuda.Context.get_current() is None  # every push was popped
    differ, dists = agreement(cpu_landmarks, gpu)
    assert differ <= 2, f"{differ} of {FRAMES} frames with another number of faces"
    assert len(dists) >= 0.9 * sum(map(len, cpu_landmarks)), "too few faces tracked alike to compare"
    assert np.median(dists) <= MEDIAN_PX["fp32"], np.median(dists)


@pytest.mark.gpu
def test_gpu_stills_upload_each_photo_and_match_the_cpu(frames, monkeypatch):
    """Photos on the GPU loop: each one is uploaded before its crops are cut (a stale frame would give the
    previous photo's faces), and the landmarks match the CPU's stills path."""
    photos = frames[::7]
    with ExitStack() as stack:
        cpu = [p.process_still(image, StillsConfig(passes=2)) for p in [app.open_pipeline(load_config(None), stack)] for image in photos]
    with stand_in_pipeline(STAGED, monkeypatch) as pipeline:
        gpu = [pipeline.process_still(image, StillsConfig(passes=2)) for image in photos]
    assert [len(faces) for faces in gpu] == [len(faces) for faces in cpu]
    dists = [float(np.linalg.norm(g.landmarks_px - c.landmarks_px, axis=1).mean())
             for gs, cs in zip(gpu, cpu) for g, c in zip(gs, cs)]
    assert dists and np.median(dists) <= MEDIAN_PX["fp32"], np.median(dists)


@pytest.mark.gpu
@pytest.mark.tensorrt
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_loop_matches_onnxruntime(frames, cpu_landmarks, precision):
    differ, dists = agreement(cpu_landmarks, backend_landmarks(frames, "tensorrt", precision))
    assert differ <= 0.05 * FRAMES, f"{differ} of {FRAMES} frames with another number of faces"
    assert dists and np.median(dists) <= MEDIAN_PX[precision], np.median(dists)


def test_gpu_pipeline_takes_device_engines_sharing_one_context():
    """The check runs before any CUDA call: ONNX Runtime engines are refused in one line, and so are device
    engines on two contexts (the loop has one stream)."""
    need_models()
    with ExitStack() as stack:
        cpu = app.open_pipeline(load_config(None), stack)
        with pytest.raises(TypeError, match="whose engines run on the GPU .* got OnnxRuntimeEngine"):
            GpuFacePipeline(cpu.detector, cpu.aligner, cpu.tracker, 4)  # type: ignore[arg-type]

    def device_engine(ctx: object) -> SimpleNamespace:
        return SimpleNamespace(cuda=ctx, placement=STAGED, device_input=int, set_batch=int, enqueue=int,
                               outputs_view=dict)

    detector = SimpleNamespace(detectors=[SimpleNamespace(engine=device_engine("context A"))])
    with pytest.raises(ValueError, match="one CUDA context"):
        GpuFacePipeline(detector, SimpleNamespace(engine=device_engine("context B")), None, 4)  # type: ignore[arg-type]


def test_gpu_timer_makes_its_events_inside_the_context():
    """pycuda ties an event to the context current when it is made and refuses one without (GpuFacePipeline
    never started); the gpu loop test above checks it on a real GPU."""
    current: List[object] = []

    class Driver:
        @staticmethod
        def Event() -> object:
            if not current:
                raise RuntimeError("explicit_context_dependent failed: invalid device context - no currently "
                                   "active context?")
            return current[-1]

    class Context:
        cuda = Driver

        @contextmanager
        def active(self) -> Iterator["Context"]:
            current.append(self)
            try:
                yield self
            finally:
                current.pop()

    ctx = Context()
    timer = GpuTimer(ctx)  # type: ignore[arg-type]
    assert timer._start is ctx and timer._end is ctx and not current
