"""BlazeFace on a frame, as MediaPipe's face detection graph does it, on any Engine backend.

Letterbox the frame to the model's square input (black bars, RGB scaled to [-1,1]), run the
network, decode box + 6 keypoints against SSD anchors, drop low scores, merge overlapping boxes
with MediaPipe's weighted NMS, and map everything back to frame pixels. Only numpy and OpenCV.
The ONNX comes from `edge.detectors.blazeface_convert` (`make models`), whose metadata names the
variant, and the variant fixes the anchors.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from edge.errors import ModelError
from edge.model.spec import ModelSpec
from edge.detectors.blazeface_convert import CLASSIFICATORS, INPUT_NAME, METADATA_KEY, REGRESSORS
from edge.detectors.base import Detections, iou
from edge.model.crop import CropBox, landmarks_to_frame, warp_crops
from edge.runtime.base import Engine, metadata_object

KEYPOINT_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear_tragion", "left_ear_tragion")
RIGHT_EYE, LEFT_EYE, RIGHT_EAR, LEFT_EAR = 0, 1, 4, 5  # the subject's right is the image's left


@dataclass(frozen=True)
class VariantOptions:
    """Per model: MediaPipe's SsdAnchorsCalculator and TensorsToDetections options (from its .pbtxt),
    and our fit of its boxes to the 68-landmark box (see `crop_for_detection`).

    Anchors have fixed size 1, so only their centres matter: consecutive layers with the same stride
    share one grid, each putting one anchor per cell (plus an interpolated one when `interpolated`).
    """

    strides: Tuple[int, ...]
    interpolated: bool
    min_score: float
    lm_box_per_width: float  # landmark-box side / detector box width
    lm_box_per_ear_span: float  # landmark-box side / distance between the two ear keypoints
    lm_centre_down: float  # landmark-box centre below the box centre, in box widths, along the face's "down"


# The lm_* constants: medians over 600 HELEN train faces (../shared/data/helen/train, .pts labels).
# Each image went through the detector; the detection overlapping the labelled landmark box most was
# compared with crop_from_landmarks(labels, 1.0) (the landmark box in the face's upright frame).
# Averaging the box-width and ear-span estimates of the side beats either alone: median |size error|
# on the 330 HELEN test faces 3.6 % (box width alone 4.5 %, ear span alone 3.5 % but shaky in profile);
# the centre sits on the box's vertical axis (median sideways offset < 0.005 widths).
# The full-range model misses 29 of these 600 close-up faces (it is made for distant ones).
VARIANT_OPTIONS: Dict[str, VariantOptions] = {
    "short": VariantOptions(strides=(8, 16, 16, 16), interpolated=True, min_score=0.5,  # 896 anchors, 128 px
                            lm_box_per_width=0.965, lm_box_per_ear_span=1.112, lm_centre_down=0.060),
    "full": VariantOptions(strides=(4,), interpolated=False, min_score=0.6,  # 2304 anchors, 192 px
                           lm_box_per_width=0.905, lm_box_per_ear_span=1.145, lm_centre_down=0.103),
}
NMS_IOU = 0.3  # MediaPipe's min_suppression_threshold for face detection
LOGIT_CLIP = 100.0  # score_clipping_thresh


def detector_pixels(input_size: int) -> ModelSpec:
    """How a detector input is cut: warp_crops reads only input_size/mean/std, here MediaPipe's [-1,1]
    scaling on a detector-sized square."""
    return replace(ModelSpec(), input_size=input_size, mean=127.5, std=127.5)


def letterbox(frame_shape: Tuple[int, ...]) -> CropBox:
    """The square that holds the whole frame (black bars), as a crop the warp understands."""
    h, w = frame_shape[:2]
    return CropBox(w / 2.0, h / 2.0, float(max(w, h)))


class FaceDetector:
    """BlazeFace as a `NetworkDetector`: `detect(frame_bgr) -> Detections`, each face's first crop placed for
    ATPN crops of `crop_scale` (ModelSpec.crop_scale); thresholds default to MediaPipe's for the variant."""

    input_name = INPUT_NAME

    def __init__(self, engine: Engine, crop_scale: float = ModelSpec.crop_scale, score_threshold: Optional[float] = None,
                 nms_iou: float = NMS_IOU, max_faces: Optional[int] = None) -> None:
        self.engine = engine
        self.crop_scale = crop_scale
        self.variant, self.input_size = _check_contract(engine)
        self.name = f"blazeface-{self.variant}"
        options = VARIANT_OPTIONS[self.variant]
        self.anchors = ssd_anchors(self.input_size, options.strides, options.interpolated)
        expected = len(self.anchors)
        if engine.outputs[REGRESSORS].shape[1] != expected:
            raise ModelError(f"{engine.path}: {engine.outputs[REGRESSORS].describe()} does not match the "
                             f"{expected} anchors of the '{self.variant}' variant; run `make models` again")
        self.score_threshold = options.min_score if score_threshold is None else float(score_threshold)
        if not 0.0 < self.score_threshold < 1.0:
            raise ValueError(f"score_threshold must be in (0, 1), got {self.score_threshold}")
        if not 0.0 < nms_iou <= 1.0:
            raise ValueError(f"nms_iou must be in (0, 1], got {nms_iou}")
        if max_faces is not None and max_faces < 1:
            raise ValueError(f"max_faces must be >= 1 or None (no limit), got {max_faces}")
        self.nms_iou, self.max_faces = nms_iou, max_faces
        self.pixels = detector_pixels(self.input_size)

    def input_box(self, frame_shape: Tuple[int, ...]) -> CropBox:
        return letterbox(frame_shape)

    def detect(self, frame_bgr: np.ndarray) -> Detections:
        image, matrices = warp_crops(frame_bgr, [letterbox(frame_bgr.shape)], self.pixels)
        return self.decode_outputs(self.engine.infer({INPUT_NAME: image}), matrices)

    def decode_outputs(self, out: Mapping[str, np.ndarray], matrices: np.ndarray) -> Detections:
        """Raw network outputs of one letterboxed frame -> detections in frame pixels (any backend)."""
        boxes, scores, keypoints = decode(out[REGRESSORS][0], out[CLASSIFICATORS][0, :, 0], self.anchors,
                                          self.input_size, self.score_threshold)
        boxes, scores, keypoints = weighted_nms(boxes, scores, keypoints, self.nms_iou, self.max_faces)
        if not len(scores):
            return Detections.empty(len(KEYPOINT_NAMES))
        points = np.concatenate([boxes.reshape(-1, 2, 2), keypoints], axis=1)  # corners + keypoints, [0,1]
        frame_pts = landmarks_to_frame(points.reshape(1, -1, 2), matrices, self.input_size)[0]
        frame_pts = frame_pts.reshape(len(scores), -1, 2).astype(np.float32)
        boxes, keypoints = frame_pts[:, :2].reshape(-1, 4).copy(), frame_pts[:, 2:].copy()
        crops = tuple(crop_for_detection(b, k, self.crop_scale, self.variant) for b, k in zip(boxes, keypoints))
        return Detections(boxes, scores.astype(np.float32), keypoints, crops)


def _check_contract(engine: Engine) -> Tuple[str, int]:
    """The variant and input size of a converted BlazeFace, or a ModelError saying what is off."""
    text = engine.metadata.get(METADATA_KEY)
    if text is None:
        raise ModelError(f"{engine.path}: no '{METADATA_KEY}' metadata, so not a converted BlazeFace detector; "
                         "run `make models` and use models/blazeface_short.onnx or models/blazeface_full.onnx")
    variant = metadata_object(engine.path, METADATA_KEY, text, "the converter writes; run `make models` again").get(
        "variant")
    if variant not in VARIANT_OPTIONS:
        raise ModelError(f"{engine.path}: unknown BlazeFace variant {variant!r}; expected one of {sorted(VARIANT_OPTIONS)}")
    found = {**engine.inputs, **engine.outputs}
    for name in (INPUT_NAME, REGRESSORS, CLASSIFICATORS):
        if name not in found:
            raise ModelError(f"{engine.path}: detector tensor '{name}' is missing; found {sorted(found)}")
    size = engine.inputs[INPUT_NAME].shape[2]
    if engine.inputs[INPUT_NAME].shape[1:] != (3, size, size) or not isinstance(size, int):
        raise ModelError(f"{engine.path}: input {engine.inputs[INPUT_NAME].describe()} is not [batch,3,S,S]")
    return variant, size


def ssd_anchors(input_size: int, strides: Sequence[int], interpolated: bool) -> np.ndarray:
    """Anchor centres [A,2] (x, y) in [0,1], in the order the network emits its predictions."""
    grids = []
    layer = 0
    while layer < len(strides):
        same = 1
        while layer + same < len(strides) and strides[layer + same] == strides[layer]:
            same += 1
        cells = math.ceil(input_size / strides[layer])
        centre = (np.arange(cells, dtype=np.float32) + 0.5) / cells
        ys, xs = np.meshgrid(centre, centre, indexing="ij")
        per_cell = same * (2 if interpolated else 1)
        grids.append(np.repeat(np.stack([xs, ys], -1).reshape(-1, 2), per_cell, axis=0))
        layer += same
    return np.concatenate(grids)


def decode(regressors: np.ndarray, logits: np.ndarray, anchors: np.ndarray, input_size: int,
           score_threshold: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw outputs of one image -> boxes [K,4] xyxy, scores [K], keypoints [K,6,2], all in [0,1] input units.

    Offsets are in input pixels relative to the anchor centre; anchors have unit size.
    """
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -LOGIT_CLIP, LOGIT_CLIP)))
    keep = np.flatnonzero(scores >= score_threshold)
    raw = regressors[keep].astype(np.float32) / input_size
    centres = anchors[keep]
    cxcy = raw[:, 0:2] + centres
    half = raw[:, 2:4] / 2
    boxes = np.concatenate([cxcy - half, cxcy + half], axis=1)
    keypoints = raw[:, 4:].reshape(-1, len(KEYPOINT_NAMES), 2) + centres[:, None, :]
    valid = (half > 0).all(axis=1)
    return boxes[valid], scores[keep][valid].astype(np.float32), keypoints[valid]


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray, iou_threshold: float,
                 max_out: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's WEIGHTED non-max suppression, best score first.

    The best remaining box takes every remaining box overlapping it by more than `iou_threshold`
    (itself included); its box and keypoints become their score-weighted mean, its score stays.
    Averaging the ~5 anchors that fire on one face steadies the box from frame to frame.
    """
    order = np.argsort(-scores, kind="stable")
    kept_boxes, kept_scores, kept_points = [], [], []
    while order.size and (max_out is None or len(kept_scores) < max_out):
        overlap = iou(boxes[order[0]], boxes[order]) > iou_threshold
        overlap[0] = True
        group, order = order[overlap], order[~overlap]
        weights = scores[group] / scores[group].sum()
        kept_boxes.append(weights @ boxes[group])
        kept_points.append(np.einsum("k,kpc->pc", weights, keypoints[group]))
        kept_scores.append(scores[group[0]])
    n = len(kept_scores)
    return (np.array(kept_boxes, np.float32).reshape(n, 4), np.array(kept_scores, np.float32),
            np.array(kept_points, np.float32).reshape(n, len(KEYPOINT_NAMES), 2))


def crop_for_detection(box_xyxy: np.ndarray, keypoints: np.ndarray, scale: float, variant: str = "short") -> CropBox:
    """The first ATPN crop for a detected face, placed as `crop_from_landmarks(landmarks, scale)` would.

    Pass the same `scale` as for landmarks (ModelSpec.crop_scale) and the detector's `variant`.
    The crop turns with the eye line; side and centre come from the box and the ear keypoints
    through the constants fitted on HELEN (VARIANT_OPTIONS).
    """
    fit = VARIANT_OPTIONS[variant]
    box = np.asarray(box_xyxy, dtype=np.float64)
    pts = np.asarray(keypoints, dtype=np.float64)
    eye_line = pts[LEFT_EYE] - pts[RIGHT_EYE]
    a = math.atan2(eye_line[1], eye_line[0])
    width = float(box[2] - box[0])
    ear_span = float(np.linalg.norm(pts[LEFT_EAR] - pts[RIGHT_EAR]))
    side = (fit.lm_box_per_width * width + fit.lm_box_per_ear_span * ear_span) / 2
    down = np.array([-math.sin(a), math.cos(a)])
    centre = (box[:2] + box[2:]) / 2 + fit.lm_centre_down * width * down
    return CropBox(float(centre[0]), float(centre[1]), max(scale * side, 1.0), math.degrees(a))
