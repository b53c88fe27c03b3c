"""The camera loop: frames from a source, faces from detector + aligner + tracker, results out.

`FacePipeline.process` is one frame's work with every stage timed; `run_loop` drives a source
through it into the sinks. Both are independent of how the engines were opened (see edge/app/run.py).
"""
from __future__ import annotations

import time
from typing import Callable, List, Optional

import numpy as np

from edge.config import StillsConfig
from edge.errors import SourceError
from edge.pipeline.aligner import Aligner, Alignment, refine
from edge.model.crop import CropBox, warp_crops
from edge.detectors.base import Detections, Detector
from edge.io.sinks import FrameResult, Sinks
from edge.io.sources import Source
from edge.pipeline.stats import FrameTimer, RunStats
from edge.pipeline.tracker import Tracker
from edge.types import Face, Frame


class FacePipeline:
    """Detector + ATPN + tracker on one frame; stage times go to `timer`."""

    def __init__(self, detector: Detector, aligner: Aligner, tracker: Tracker) -> None:
        self.detector = detector
        self.aligner = aligner
        self.tracker = tracker
        self.timer = FrameTimer()

    def process(self, image: np.ndarray) -> List[Face]:
        start = time.perf_counter()
        faces = self.tracker.step(image, self._detect, self._align)
        self._add_track_time(start)
        return faces

    def process_still(self, image: np.ndarray, stills: StillsConfig = StillsConfig()) -> List[Face]:
        """A photo on its own, as MediaPipe's static_image_mode: detect, then `stills.passes` ATPN passes per face,
        each after the first re-cropping from the last landmarks at `stills.refine_scale`; no track is read or
        kept, so photos never steer each other."""
        start = time.perf_counter()
        found = self._detect(image)
        crops = list(found.crops[:self.tracker.config.max_faces])
        faces: List[Face] = []
        if crops:
            result = refine(self._align, image, crops, stills.passes, stills.refine_scale)
            faces = self.tracker.still_faces(image.shape, result, found.scores)
        self._add_track_time(start)
        return faces

    def _add_track_time(self, start: float) -> None:
        """The frame's time since `start` outside detector and ATPN: the tracker's own bookkeeping."""
        inside = self.timer.get("detect", "align_pre", "align_net")
        self.timer.add("track", 1000.0 * (time.perf_counter() - start) - inside)

    def _detect(self, image: np.ndarray) -> Detections:
        with self.timer.stage("detect"):
            return self.detector.detect(image)

    def _align(self, image: np.ndarray, boxes: List[CropBox]) -> Alignment:
        with self.timer.stage("align_pre"):
            crops, matrices = warp_crops(image, self.aligner.network_boxes(boxes), self.aligner.spec)
        with self.timer.stage("align_net"):
            return self.aligner.run_crops(crops, matrices, boxes)


def run_loop(source: Source, pipeline: FacePipeline, sinks: Sinks, stats: RunStats, max_frames: int = 0,
             on_frame: Optional[Callable[[Frame, List[Face]], None]] = None,
             stills: Optional[StillsConfig] = None) -> RunStats:
    """Until the source ends, `max_frames` (0 = no limit) or the window is closed; `stats` fills as it goes,
    so a caller that catches Ctrl-C still has everything up to the last finished frame. A source without
    a single frame raises SourceError. With `stills` every frame is a photo on its own
    (`FacePipeline.process_still`), not tracked from the one before."""
    timer = pipeline.timer
    frames = iter(source)
    while not max_frames or stats.frames < max_frames:
        start = time.perf_counter()
        with timer.stage("capture"):
            frame = next(frames, None)
        if frame is None:
            if not stats.frames:
                raise no_frames_error(source)
            break
        if frame.gap_s:  # the live source dropped and came back: the faces may have moved or gone
            pipeline.tracker.reset()
        faces = pipeline.process_still(frame.image, stills) if stills else pipeline.process(frame.image)
        keep_going = True
        if sinks.pictures:
            with timer.stage("render"):
                picture = sinks.draw(frame, faces)
            with timer.stage("output"):
                keep_going = sinks.show(FrameResult(frame, faces, dict(timer.ms), stills is not None), picture)
        if sinks.records:  # a record holds the times up to its own writing; the stats include its writing
            with timer.stage("output"):
                sinks.record(FrameResult(frame, faces, dict(timer.ms, total=1000.0 * (time.perf_counter() - start)),
                                         stills is not None))
        timer.add("total", 1000.0 * (time.perf_counter() - start))
        stats.add(timer.take(), len(faces))  # after the JSON line: a Ctrl-C leaves both with the same frames
        if on_frame is not None:
            on_frame(frame, faces)
        if not keep_going:
            break
    return stats


def no_frames_error(source: Source) -> SourceError:
    """An input that yields nothing is an error (exit 2), not an empty success."""
    failed = f" ({source.skipped} failed to decode)" if source.skipped else ""
    if source.photos:
        return SourceError(f"{source.uri}: no image could be read{failed}; check that the files open in an image "
                           "viewer, or convert them to .jpg or .png")
    return SourceError(f"{source.uri}: no frame could be read{failed}; check that it plays (e.g. ffplay) "
                       "or convert it to H.264 .mp4")
