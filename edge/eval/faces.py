"""How an evaluation finds a labelled face and aligns it: through the product's own stills path.

`detector` boxes: `FacePipeline.process_still`, exactly what `run_camera.py -i photos/` runs on each photo
(detect, place each face's first crop, `passes` ATPN passes, keep the faces the tracker's rules keep); the
face whose landmark box overlaps the labelled one most is the answer. A face the product does not report
counts as a failure (NME = inf); the detection rate is reported. `labels` boxes: the crop the tracker would
place from the true landmarks (`crop_from_landmarks`), an oracle that measures the network alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Sequence, Tuple

import cv2
import numpy as np

from edge.config import StillsConfig
from edge.errors import DatasetError
from edge.eval.datasets import FaceRecord
from edge.eval.report import progress
from edge.model.crop import crop_from_landmarks
from edge.pipeline.aligner import refine
from edge.pipeline.loop import FacePipeline
from edge.pipeline.tracker import bounds, iou

BOX_MODES = ("detector", "labels")
MATCH_IOU = 0.3  # reported face vs labelled landmark box: a wrong face scores ~0


@dataclass(frozen=True)
class Aligned:
    landmarks_px: np.ndarray  # [K,2]
    pose_deg: np.ndarray  # [3] yaw, pitch, roll
    track: float
    match_iou: float  # its landmark box against the labelled one (1.0 for label boxes)


class FaceFinder:
    """The labelled face as the product reports it (`detector` boxes) or from an oracle crop (`labels`)."""

    def __init__(self, pipeline: FacePipeline, boxes: str = "detector", stills: StillsConfig = StillsConfig()) -> None:
        if boxes not in BOX_MODES:
            raise ValueError(f"boxes must be one of {BOX_MODES}, got {boxes!r}")
        self.pipeline, self.boxes, self.stills = pipeline, boxes, stills

    def find(self, image_bgr: np.ndarray, truth: np.ndarray) -> Optional[Aligned]:
        """None when the product reports no face on the labelled one."""
        if self.boxes == "labels":
            return self._from_labels(image_bgr, truth)
        faces = self.pipeline.process_still(image_bgr, self.stills)
        self.pipeline.timer.take()  # per-stage times are the loop's business, not the evaluation's
        target = bounds(truth)
        scored = [(iou(face.box_xyxy, target), face) for face in faces]
        best = max(scored, key=lambda pair: pair[0], default=None)
        if best is None or best[0] < MATCH_IOU:
            return None
        overlap, face = best
        return Aligned(face.landmarks_px, face.pose_ypr_deg, face.score, overlap)

    def _from_labels(self, image_bgr: np.ndarray, truth: np.ndarray) -> Aligned:
        aligner = self.pipeline.aligner
        crops = [crop_from_landmarks(truth, aligner.spec.crop_scale)]
        result = refine(aligner, image_bgr, crops, self.stills.passes, self.stills.refine_scale)
        return Aligned(result.landmarks_px[0], result.pose_deg[0], float(result.track[0]), 1.0)


def measure(records: Sequence[FaceRecord], finder: FaceFinder, desc: str
            ) -> Iterator[Tuple[FaceRecord, Optional[Aligned]]]:
    """Each labelled face and what the product reports for it (None: no face there), with a progress bar."""
    for record in progress(records, desc, "face"):
        yield record, finder.find(read_image(record.image_path), record.landmarks)


def read_image(path: str) -> np.ndarray:
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"{path}: cannot read as an image; is the file complete?")
    return image
