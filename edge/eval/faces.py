"""How an evaluation finds a labelled face and aligns it, the way the runtime would.

`detector` boxes: our face detector runs on the image and the detection that overlaps the labelled
face most becomes the first crop, placed by the tracker's own `place_detection` (as on its first
frame). A face the detector misses counts as a failure (NME = inf); the detection rate is reported.
`labels` boxes: the crop the tracker would place from the true landmarks (`crop_from_landmarks`),
an oracle that measures the network alone. More passes re-crop from the previous pass's landmarks,
as the tracker does on the next frame of a still scene.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence, Tuple

import cv2
import numpy as np

from edge.errors import DatasetError
from edge.eval.report import progress
from edge.pipeline.aligner import Aligner
from edge.model.crop import CropBox, crop_from_landmarks
from edge.detectors.blazeface import DetectorCascade
from edge.pipeline.tracker import PlaceFn, bounds, iou
from edge.eval.datasets import FaceRecord

BOX_MODES = ("detector", "labels")
MATCH_IOU = 0.3  # detection vs landmark box: the two box conventions differ, a wrong face scores ~0


@dataclass(frozen=True)
class Located:
    """Where the first crop goes; crop None when the detector missed the face."""

    crop: Optional[CropBox]
    detector_score: float = math.nan
    detector_iou: float = math.nan


@dataclass(frozen=True)
class Aligned:
    landmarks_px: np.ndarray  # [K,2]
    pose_deg: np.ndarray  # [3] yaw, pitch, roll
    track: float


class FaceFinder:
    """Locate a labelled face (detector or labels) and run ATPN on it for `passes` crops."""

    def __init__(self, aligner: Aligner, detector: Optional[Tuple[DetectorCascade, PlaceFn]], passes: int = 1) -> None:
        """`detector`: the detector and how the tracker turns a detection into a crop; None: label boxes."""
        if passes < 1:
            raise ValueError(f"passes must be >= 1, got {passes}")
        self.aligner = aligner
        self.detector, self.place_detection = detector if detector is not None else (None, None)
        self.passes = passes

    @property
    def boxes(self) -> str:
        return "labels" if self.detector is None else "detector"

    def locate(self, image_bgr: np.ndarray, truth: np.ndarray) -> Located:
        if self.detector is None or self.place_detection is None:
            return Located(crop_from_landmarks(truth, self.aligner.spec.crop_scale))
        found = self.detector.detect(image_bgr)
        if len(found.scores) == 0:
            return Located(None, detector_iou=0.0)
        target = bounds(truth)
        overlaps = [iou(np.asarray(box, dtype=np.float64), target) for box in found.boxes_xyxy]
        best = int(np.argmax(overlaps))
        if overlaps[best] < MATCH_IOU:
            return Located(None, float(found.scores[best]), overlaps[best])
        crop = self.place_detection(found.boxes_xyxy[best], found.keypoints[best], variant=found.variant)
        return Located(crop, float(found.scores[best]), overlaps[best])

    def align(self, image_bgr: np.ndarray, crop: CropBox) -> Aligned:
        result = self.aligner(image_bgr, [crop])
        for _ in range(self.passes - 1):
            crop = crop_from_landmarks(result.landmarks_px[0], self.aligner.spec.crop_scale)
            result = self.aligner(image_bgr, [crop])
        return Aligned(result.landmarks_px[0], result.pose_deg[0], float(result.track[0]))


def measure(records: Sequence[FaceRecord], finder: FaceFinder, desc: str
            ) -> Iterator[Tuple[FaceRecord, Located, Optional[Aligned]]]:
    """Each labelled face located and aligned (None when the detector missed it), with a progress bar."""
    for record in progress(records, desc, "face"):
        image = read_image(record.image_path)
        located = finder.locate(image, record.landmarks)
        yield record, located, None if located.crop is None else finder.align(image, located.crop)


def read_image(path: str) -> np.ndarray:
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"{path}: cannot read as an image; is the file complete?")
    return image
