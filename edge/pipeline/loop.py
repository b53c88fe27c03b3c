"""The camera loop: frames from a source, faces from detector + aligner + tracker, results out.

`FacePipeline.process` is one frame's work with every stage timed; `run_loop` drives a source
through it into the outputs. Both are independent of how the engines were opened (see app.py).
"""
from __future__ import annotations

import time
from typing import Callable, List, Optional

import numpy as np

from edge.pipeline.aligner import Aligner, Alignment
from edge.pipeline.crop import CropBox, warp_crops
from edge.pipeline.detector import Detections
from edge.pipeline.outputs import Outputs
from edge.pipeline.sources import Source
from edge.pipeline.stats import FrameTimer, RunStats
from edge.pipeline.tracker import Tracker
from edge.types import Face, Frame


class FacePipeline:
    """Detector + ATPN + tracker on one frame; stage times go to `timer`."""

    def __init__(self, detector: object, aligner: Aligner, tracker: Tracker) -> None:
        self.detector = detector  # anything with detect(frame_bgr) -> Detections
        self.aligner = aligner
        self.tracker = tracker
        self.timer = FrameTimer()

    def process(self, image: np.ndarray) -> List[Face]:
        start = time.perf_counter()
        faces = self.tracker.step(image, self._detect, self._align)
        inside = self.timer.get("detect", "align_pre", "align_net")
        self.timer.add("track", 1000.0 * (time.perf_counter() - start) - inside)
        return faces

    def _detect(self, image: np.ndarray) -> Detections:
        with self.timer.stage("detect"):
            return self.detector.detect(image)  # type: ignore[attr-defined]

    def _align(self, image: np.ndarray, boxes: List[CropBox]) -> Alignment:
        with self.timer.stage("align_pre"):
            crops, matrices = warp_crops(image, self.aligner.network_boxes(boxes), self.aligner.spec)
        with self.timer.stage("align_net"):
            return self.aligner.run_crops(crops, matrices, boxes)


def run_loop(source: Source, pipeline: FacePipeline, outputs: Outputs, stats: RunStats, max_frames: int = 0,
             on_frame: Optional[Callable[[Frame, List[Face]], None]] = None) -> RunStats:
    """Until the source ends, `max_frames` (0 = no limit) or the window is closed; `stats` fills as it goes,
    so a caller that catches Ctrl-C still has everything up to the last finished frame."""
    timer = pipeline.timer
    frames = iter(source)
    while not max_frames or stats.frames < max_frames:
        start = time.perf_counter()
        with timer.stage("capture"):
            frame = next(frames, None)
        if frame is None:
            break
        faces = pipeline.process(frame.image)
        keep_going = outputs.show(frame, faces, timer)
        timer.add("total", 1000.0 * (time.perf_counter() - start))
        frame_ms = timer.take()
        stats.add(frame_ms, len(faces))
        outputs.record(frame, faces, frame_ms)
        if on_frame is not None:
            on_frame(frame, faces)
        if not keep_going:
            break
    return stats
