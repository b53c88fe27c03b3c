"""Heatmap-guided face tracking as a pure state machine (MediaPipe Face Mesh semantics).

Detect on the first frame and whenever no track is alive: on each of the first `idle_grace` such
frames (a face lost at a shot cut is back at once), then on the next and every `idle_detect_every`-th
after it (to spare a Jetson's power on an empty scene); otherwise each track's next crop comes
from its previous landmarks, and ATPN's track score decides whether it survives. The detector also
runs every `detect_every` frames to pick up new faces; a detection that overlaps a live track is
that track's face (IDs stay stable), the others start new tracks up to `max_faces`. All crops of a
frame go to the aligner in one batch. A detection's first crop is the detector's own (`Detections.crops`).
The detector and the aligner are passed in as callables, so the tracker does no I/O and runs on synthetic
data in tests.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Sequence, Tuple

import numpy as np

from edge.config import TrackerConfig
from edge.pipeline.aligner import AlignFn, Alignment
from edge.model.crop import CropBox, crop_from_landmarks
from edge.detectors.base import Detections, iou as boxes_iou
from edge.types import Face, TrackState

DetectFn = Callable[[np.ndarray], Detections]
DUPLICATE_IOU = 0.5  # two tracks overlapping this much have converged on one face: keep the older


@dataclass
class _Track:
    track_id: int
    crop: CropBox  # where ATPN looks on the next frame
    state: TrackState
    box_xyxy: np.ndarray  # the face's bounds on the last frame (landmarks, or the detection)
    hold_left: int = 0  # frames this detection's crop may still be kept while ATPN doubts the face
    vouched: bool = False  # the detector was sure enough to report the face even if ATPN doubts it


class Tracker:
    """`step(image, detect, align)` once per frame -> the faces alive on that frame."""

    def __init__(self, config: TrackerConfig, crop_scale: float) -> None:
        self.config = config
        self.crop_scale = crop_scale  # landmark box -> next crop (ModelSpec.crop_scale, as in training)
        self._tracks: List[_Track] = []
        self._ended: List[_Track] = []  # tracks that ended on the last frame: a detection there keeps the ID
        self._next_id = 1
        self._frames_since_detection = 0
        self._idle_frames = 0  # frames in a row that started with no live track

    def step(self, image: np.ndarray, detect: DetectFn, align: AlignFn) -> List[Face]:
        every = self.config.detect_every
        tracking = bool(self._tracks)
        if tracking:
            detected = every > 0 and self._frames_since_detection >= every
        else:  # an empty scene: search at once, then on every idle_detect_every-th frame (the detector's power)
            idle = self._idle_frames
            detected = idle < self.config.idle_grace or (idle - self.config.idle_grace) % self.config.idle_detect_every == 0
        if detected:
            self._add_new_faces(detect(image))
        faces = self._align(image, align)
        if tracking and not faces and not detected:  # every track ended here: look again now, not a frame late
            self._add_new_faces(detect(image))
            faces = self._align(image, align)
        self._frames_since_detection += 1
        self._idle_frames = 0 if self._tracks else self._idle_frames + 1
        return faces

    def reset(self) -> None:
        """Forget every track (a shot cut the caller knows about, a new stream); IDs keep counting."""
        self._tracks, self._ended = [], []
        self._idle_frames = 0

    def _add_new_faces(self, detections: Detections) -> None:
        self._frames_since_detection = 0
        for i in np.argsort(-np.asarray(detections.scores), kind="stable"):
            if len(self._tracks) >= self.config.max_faces:
                return
            box = np.asarray(detections.boxes_xyxy[i], dtype=np.float64)
            if any(iou(box, t.box_xyxy) >= self.config.match_iou for t in self._tracks):
                continue  # a face we already track: its landmark crop beats a detector box
            crop = detections.crops[i]
            vouched = float(detections.scores[i]) >= self.config.vouch_score
            self._tracks.append(_Track(self._id_for(box), crop, TrackState.DETECTED, box, self.config.hold_frames,
                                       vouched))

    def _id_for(self, box: np.ndarray) -> int:
        """The ID of a track that ended on the last frame where this face is (a face ATPN lost for a
        moment is the same person), else a new one."""
        for k, old in enumerate(self._ended):
            if iou(box, old.box_xyxy) >= self.config.match_iou:
                return self._ended.pop(k).track_id
        self._next_id += 1
        return self._next_id - 1

    def _align(self, image: np.ndarray, align: AlignFn) -> List[Face]:
        if not self._tracks:
            return []
        result = align(image, [t.crop for t in self._tracks])
        height, width = image.shape[:2]
        survivors: List[_Track] = []
        faces: List[Face] = []
        for i, track in enumerate(self._tracks):
            landmarks = result.landmarks_px[i]
            box = bounds(landmarks)
            score = float(result.track[i])
            if not self._plausible(box, width, height) or _duplicate(box, [t.box_xyxy for t in survivors]):
                continue
            tracked = score >= self.config.track_threshold
            if not tracked and not track.vouched:
                continue
            # A face the detector is sure of is reported even when ATPN doubts its crop (dark, blurred, turned
            # away): the detector vouches for it, on its frame and for `hold_frames` more on the same crop,
            # before it must detect again. A weak detection ATPN doubts is dropped: on an empty scene those
            # are textures (BlazeFace scores them just over its threshold). Only ATPN's score moves a track
            # on to landmark-placed crops.
            faces.append(Face(track.track_id, track.state, box.astype(np.float32), landmarks.astype(np.float32),
                              np.asarray(result.pose_deg[i], dtype=np.float32), score))
            if tracked:
                crop = crop_from_landmarks(landmarks, self.crop_scale)
                survivors.append(_Track(track.track_id, crop, TrackState.TRACKED, box))
            elif track.hold_left > 0:
                survivors.append(_Track(track.track_id, track.crop, TrackState.HELD, track.box_xyxy,
                                        track.hold_left - 1, vouched=True))
        alive = {t.track_id for t in survivors}
        self._ended = [t for t in self._tracks if t.track_id not in alive]
        self._tracks = survivors
        return faces

    def still_faces(self, image_shape: Tuple[int, ...], result: Alignment, detector_scores: np.ndarray) -> List[Face]:
        """The faces of one photo on its own (no tracks read or kept), by the same rules as a first frame:
        plausible, not a duplicate, and ATPN sure of the crop or the detector sure of the face."""
        height, width = image_shape[:2]
        faces: List[Face] = []
        kept: List[np.ndarray] = []  # boxes of the faces kept so far
        for i, landmarks in enumerate(result.landmarks_px):
            box = bounds(landmarks)
            score = float(result.track[i])
            sure = score >= self.config.track_threshold or float(detector_scores[i]) >= self.config.vouch_score
            if not sure or not self._plausible(box, width, height) or _duplicate(box, kept):
                continue
            kept.append(box)
            faces.append(Face(len(kept), TrackState.DETECTED, box.astype(np.float32), landmarks.astype(np.float32),
                              np.asarray(result.pose_deg[i], dtype=np.float32), score))
        return faces

    def _plausible(self, box: np.ndarray, width: int, height: int) -> bool:
        """Geometry catches a collapsed crop or a face gone off the frame."""
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        return min(box[2] - box[0], box[3] - box[1]) >= self.config.min_face_px and 0 <= cx < width and 0 <= cy < height


def bounds(points: np.ndarray) -> np.ndarray:
    """[K,2] points -> [4] x0, y0, x1, y1."""
    pts = np.asarray(points, dtype=np.float64)
    return np.concatenate([pts.min(0), pts.max(0)])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two xyxy boxes (the detector's vectorised IoU, for one pair)."""
    return float(boxes_iou(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)[None])[0])


def _duplicate(box: np.ndarray, kept: Sequence[np.ndarray]) -> bool:
    return any(iou(box, other) > DUPLICATE_IOU for other in kept)
