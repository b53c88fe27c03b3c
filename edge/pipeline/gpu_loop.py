"""The camera loop's GPU path: TensorRT engines, pre-processing on the device, one CUDA stream.

Per frame the image crosses to the GPU once (not at all on Jetson, where its buffer is mapped).
The detector's input (`NetworkDetector.input_box`) and every ATPN crop are warped there by one kernel, straight into the
engines' input buffers; kernels and engines queue on the shared stream and the host waits once
per engine call (on a frame that re-detects, the tracker needs the detections before it can place
the crops, so such a frame waits twice). CUDA events time each engine on the GPU itself.
Tracker, decoding and outputs are the CPU pipeline's own. Any engine with the device-side calls
(`base.DeviceEngine`) will do: TensorRT's, or a test's stand-in on a GPU without TensorRT.
"""
from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from edge.config import StillsConfig
from edge.model.spec import INPUT_NAME
from edge.pipeline.aligner import Aligner, Alignment
from edge.model.crop import CropBox
from edge.detectors.base import DetectorCascade, Detections, NetworkDetector
from edge.pipeline.gpu_crop import GpuCropper
from edge.pipeline.loop import FacePipeline
from edge.pipeline.stats import LatencyHistogram
from edge.pipeline.tracker import Tracker
from edge.runtime.base import DeviceEngine
from edge.runtime.cuda import CudaContext
from edge.types import Face


class GpuTimer:
    """GPU milliseconds per engine call, from CUDA events on the loop's stream."""

    def __init__(self, ctx: CudaContext) -> None:
        self._ctx = ctx
        with ctx.active():  # a pycuda event belongs to the context current when it is made, and needs one
            self._start, self._end = ctx.cuda.Event(), ctx.cuda.Event()
        self.ms: Dict[str, LatencyHistogram] = {}  # fixed size per engine, however long the loop runs

    def begin(self, stream: Any) -> None:
        self._start.record(stream)

    def end(self, stream: Any) -> None:
        self._end.record(stream)

    def collect(self, name: str) -> None:
        """After the stream sync: the elapsed time between the two events."""
        self.ms.setdefault(name, LatencyHistogram()).add(self._end.time_since(self._start))

    def close(self) -> None:
        """Destroy the events while their context is current (once it is gone, pycuda can only warn)."""
        with self._ctx.active():
            self._start = self._end = None


class GpuFacePipeline(FacePipeline):
    def __init__(self, detector: DetectorCascade, aligner: Aligner, tracker: Tracker, max_crops: int) -> None:
        super().__init__(detector, aligner, tracker)
        self.det_engines = {id(d): _on_device(getattr(d, "engine", None)) for d in detector.detectors}
        self.atpn_engine = _on_device(aligner.engine)
        self.ctx = self.atpn_engine.cuda
        if any(e.cuda is not self.ctx for e in self.det_engines.values()):
            raise ValueError("the GPU pipeline's engines must share one CUDA context (and so its one stream)")
        self.cropper = GpuCropper(self.ctx, max_crops, self.atpn_engine.placement)  # as the engines: mapped on Jetson
        self.gpu = GpuTimer(self.ctx)

    def process(self, image: np.ndarray) -> List[Face]:
        self._upload(image)
        with self.ctx.active():
            return super().process(image)

    def process_still(self, image: np.ndarray, stills: StillsConfig = StillsConfig()) -> List[Face]:
        self._upload(image)
        with self.ctx.active():
            return super().process_still(image, stills)

    def _upload(self, image: np.ndarray) -> None:
        """The frame to the device (mapped on Jetson), where every crop of it is cut; part of getting it."""
        with self.timer.stage("capture"):
            self.cropper.upload(image)

    def _detect(self, image: np.ndarray) -> Detections:
        """The cascade on the GPU: each model in turn until one finds a face."""
        with self.timer.stage("detect"):
            return self.detector.first_hit(lambda det: self._detect_with(det, image))  # type: ignore[attr-defined]

    def _detect_with(self, det: NetworkDetector, image: np.ndarray) -> Detections:
        engine = self.det_engines[id(det)]
        matrices = self.cropper.warp([det.input_box(image.shape)], det.pixels, engine.device_input(det.input_name))
        return det.decode_outputs(self._run(engine, 1, f"detector-{det.name}"), matrices)

    def _align(self, image: np.ndarray, boxes: List[CropBox]) -> Alignment:
        with self.timer.stage("align_pre"):
            net_boxes = self.aligner.network_boxes(boxes)
            matrices = self.cropper.warp(net_boxes, self.aligner.spec, self.atpn_engine.device_input(INPUT_NAME))
        with self.timer.stage("align_net"):
            out = self._run(self.atpn_engine, len(net_boxes), "atpn")
            return self.aligner.decode_outputs(out, matrices, boxes)

    def _run(self, engine: DeviceEngine, batch: int, name: str) -> Dict[str, np.ndarray]:
        stream = self.ctx.stream
        engine.set_batch(batch)
        self.gpu.begin(stream)
        engine.enqueue()
        self.gpu.end(stream)
        stream.synchronize()
        self.gpu.collect(name)
        return engine.outputs_view()

    def close(self) -> None:
        self.cropper.close()
        self.gpu.close()


def _on_device(engine: object) -> DeviceEngine:
    if not isinstance(engine, DeviceEngine):
        raise TypeError(f"the GPU pipeline needs detectors and an aligner whose engines run on the GPU (TensorRT), "
                        f"got {type(engine).__name__}")
    return engine
