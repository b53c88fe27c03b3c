"""What the pipeline needs of a face detector, whatever the model: `Detector` and the `Detections` it returns.

A detector places each face's first ATPN crop itself (`Detections.crops`), because only it knows how its
boxes and keypoints sit on a face; the tracker, the stills path and calibration just use the crops.
A detector whose network runs on an `Engine` (`NetworkDetector`) can also run in the GPU loop, which cuts
its input on the device. A second detector is one file beside blazeface.py plus its line in DETECTORS (__init__.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Protocol, Sequence, Tuple

import numpy as np

from edge.model.crop import CropBox
from edge.model.spec import ModelSpec
from edge.runtime.base import Engine


@dataclass(frozen=True)
class Detections:
    """Faces found on one frame, as parallel arrays (one row per face, best score first), frame pixels."""

    boxes_xyxy: np.ndarray  # [K,4] float32
    scores: np.ndarray  # [K] float32, face probability
    keypoints: np.ndarray  # [K,P,2] float32, the detector's own P keypoints (any count, P may be 0)
    crops: Tuple[CropBox, ...]  # [K] the first ATPN crop of each face, placed by the detector

    def __post_init__(self) -> None:
        k = _check_array("boxes_xyxy", self.boxes_xyxy, (None, 4))
        _check_array("scores", self.scores, (k,))
        _check_array("keypoints", self.keypoints, (k, None, 2))
        if len(self.crops) != k:
            raise ValueError(f"crops must hold one CropBox per face ({k}), got {len(self.crops)}")

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls, keypoints: int = 0) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, keypoints, 2), np.float32), ())


def _check_array(name: str, value: object, shape: Tuple[Optional[int], ...]) -> int:
    ok = isinstance(value, np.ndarray) and value.dtype == np.float32 and value.ndim == len(shape) and all(
        want is None or got == want for got, want in zip(value.shape, shape))
    if not ok:
        want = str(tuple("K" if d is None else d for d in shape)).replace("'", "")
        got = f"{value.dtype} {value.shape}" if isinstance(value, np.ndarray) else type(value).__name__
        raise ValueError(f"{name} must be a float32 np.ndarray with shape {want}, but got {got}")
    return int(value.shape[0])  # type: ignore[union-attr]


class Detector(Protocol):
    def detect(self, frame_bgr: np.ndarray) -> Detections:
        """Every face on a BGR frame, best first, with the crop ATPN should look at first."""


class NetworkDetector(Detector, Protocol):
    """A detector whose network runs on an Engine: the GPU loop cuts its input on the device and decodes here."""

    engine: Engine
    input_name: str  # the engine input the cut frame goes into
    pixels: ModelSpec  # how the input is cut: input_size, mean, std (see crop.warp_crops)
    name: str  # for per-engine GPU times

    def input_box(self, frame_shape: Tuple[int, ...]) -> CropBox:
        """The region of the frame the network sees."""

    def decode_outputs(self, outputs: Mapping[str, np.ndarray], matrices: np.ndarray) -> Detections:
        """Raw outputs of one cut frame (`matrices` from the cut) -> detections in frame pixels."""


class DetectorCascade:
    """Detectors tried in turn until one finds a face: e.g. BlazeFace's short-range model (cheap, close faces,
    which the full-range one often misses), then the full-range one (small, distant faces).

    The model that found faces last goes first next time: a distant face stays distant between
    detections, so it does not pay for a short-range miss on every one."""

    def __init__(self, detectors: Sequence[Detector]) -> None:
        if not detectors:
            raise ValueError("a DetectorCascade needs at least one detector")
        self.detectors = list(detectors)

    def detect(self, frame_bgr: np.ndarray) -> Detections:
        return self.first_hit(lambda detector: detector.detect(frame_bgr))

    def first_hit(self, run: Callable[[Detector], Detections]) -> Detections:
        """`run` on each detector in the current order until one finds a face (any backend)."""
        for k, detector in enumerate(self.detectors):
            found = run(detector)
            if len(found):
                if k:
                    self.detectors.insert(0, self.detectors.pop(k))
                return found
        return found


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one xyxy box with each of `boxes` [N,4]."""
    lo = np.maximum(box[:2], boxes[:, :2])
    hi = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
