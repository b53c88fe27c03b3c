"""The tracker state machine on synthetic scenes: a fake detector and a fake ATPN that see the truth."""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np
import pytest

from edge.config import TrackerConfig
from edge.pipeline.aligner import Alignment
from edge.model.crop import CropBox
from edge.detectors.base import Detections
from edge.detectors.blazeface import crop_for_detection
from edge.pipeline.tracker import Tracker, iou
from edge.types import TrackState

FRAME = np.zeros((360, 640, 3), np.uint8)
CROP_SCALE = 1.6


def face_landmarks(cx: float, cy: float, size: float) -> np.ndarray:
    """68 points spread over a size x size face, eyes (36-47) level, so crops come out upright."""
    grid = np.linspace(-0.5, 0.5, 68)
    pts = np.stack([grid, np.roll(grid, 17)], 1)
    pts[36:42] = (-0.2, -0.15)
    pts[42:48] = (0.2, -0.15)
    return pts * size + (cx, cy)


class Scene:
    """Faces (centre, size, detector score) per frame; the fakes read the current frame's faces."""

    def __init__(self) -> None:
        self.faces: List[Dict[str, float]] = []
        self.detect_calls = 0
        self.align_batches: List[int] = []

    def detect(self, image: np.ndarray) -> Detections:
        self.detect_calls += 1
        h, w = image.shape[:2]
        seen = [f for f in self.faces if 0 <= f["cx"] < w and 0 <= f["cy"] < h]
        if not seen:
            return Detections.empty()
        boxes = np.array([[f["cx"] + f.get("dx", 0.0) - f["s"] / 2, f["cy"] - f["s"] / 2,
                           f["cx"] + f.get("dx", 0.0) + f["s"] / 2, f["cy"] + f["s"] / 2] for f in seen], np.float32)
        kps = np.zeros((len(seen), 6, 2), np.float32)
        kps[:, 0] = [(f["cx"] - 0.2 * f["s"], f["cy"]) for f in seen]
        kps[:, 1] = [(f["cx"] + 0.2 * f["s"], f["cy"]) for f in seen]
        kps[:, 4] = [(f["cx"] - 0.45 * f["s"], f["cy"]) for f in seen]
        kps[:, 5] = [(f["cx"] + 0.45 * f["s"], f["cy"]) for f in seen]
        crops = tuple(crop_for_detection(box, points, CROP_SCALE) for box, points in zip(boxes, kps))
        return Detections(boxes, np.array([f.get("score", 0.9) for f in seen], np.float32), kps, crops)

    def align(self, image: np.ndarray, boxes: Sequence[CropBox]) -> Alignment:
        """ATPN that finds the face whose centre lies in the crop; an empty crop gives a low score."""
        self.align_batches.append(len(boxes))
        lms, scores = [], []
        for box in boxes:
            near = box.size / 3
            inside = [f for f in self.faces if abs(f["cx"] - box.cx) < near and abs(f["cy"] - box.cy) < near]
            if inside:
                f = inside[0]
                lms.append(face_landmarks(f["cx"], f["cy"], f["s"]))
                scores.append(0.95)
            else:
                lms.append(face_landmarks(box.cx, box.cy, box.size / CROP_SCALE))
                scores.append(0.05)
        n = len(boxes)
        return Alignment(np.array(lms), np.zeros((n, 3), np.float32), np.array(scores, np.float32),
                         np.zeros((n, 1, 28, 28), np.float32))


def make_tracker(**overrides: object) -> Tracker:
    settings = dict(track_threshold=0.5, detect_every=10, max_faces=4, idle_grace=0, idle_detect_every=1)
    settings.update(overrides)
    return Tracker(TrackerConfig(**settings), crop_scale=CROP_SCALE)  # type: ignore[arg-type]


def run(tracker: Tracker, scene: Scene, frames: int, move=None) -> List[list]:
    history = []
    for t in range(frames):
        if move is not None:
            move(scene, t)
        history.append(tracker.step(FRAME, scene.detect, scene.align))
    return history


def test_detects_first_frame_then_tracks_from_landmarks():
    scene = Scene()
    scene.faces = [{"cx": 300.0, "cy": 180.0, "s": 100.0}]
    history = run(make_tracker(detect_every=0), scene, 20, move=lambda s, t: s.faces[0].update(cx=300.0 + 3 * t))
    assert scene.detect_calls == 1
    assert history[0][0].state is TrackState.DETECTED
    assert all(len(faces) == 1 and faces[0].track_id == 1 and faces[0].state is TrackState.TRACKED
               for faces in history[1:])
    assert history[-1][0].box_xyxy[0] == pytest.approx(300 + 3 * 19 - 50, abs=1)  # followed the moving face


@pytest.mark.parametrize("every, frames, calls", [(1, 6, 6), (5, 16, 4), (10, 25, 3), (0, 25, 1)])
def test_redetects_every_k_frames(every, frames, calls):
    scene = Scene()
    scene.faces = [{"cx": 300.0, "cy": 180.0, "s": 100.0}]
    history = run(make_tracker(detect_every=every), scene, frames)
    assert scene.detect_calls == calls
    assert {f.track_id for faces in history for f in faces} == {1}  # re-detection keeps the ID


def test_loss_redetects_on_the_same_frame_with_a_new_id():
    """A shot cut: the face jumps; the old track's crop is empty, detection finds the face at once."""
    scene = Scene()
    scene.faces = [{"cx": 150.0, "cy": 180.0, "s": 100.0}]
    history = run(make_tracker(detect_every=0), scene, 10,
                  move=lambda s, t: s.faces[0].update(cx=150.0 if t < 5 else 500.0))
    assert [faces[0].track_id for faces in history] == [1] * 5 + [2] * 5
    assert history[5][0].state is TrackState.DETECTED
    assert scene.detect_calls == 2


def test_no_face_detects_every_frame_and_picks_it_up_when_it_comes():
    scene = Scene()
    history = run(make_tracker(), scene, 8, move=lambda s, t: setattr(s, "faces", [] if t < 4 else
                                                                     [{"cx": 320.0, "cy": 180.0, "s": 90.0}]))
    assert [len(faces) for faces in history] == [0] * 4 + [1] * 4
    assert scene.detect_calls == 5  # frames 0-3 with nothing, frame 4 finds it, then tracking
    assert scene.align_batches == [1] * 4


def test_face_leaving_the_frame_ends_its_track_without_error():
    scene = Scene()
    scene.faces = [{"cx": 100.0, "cy": 180.0, "s": 80.0}]
    history = run(make_tracker(detect_every=0), scene, 12, move=lambda s, t: s.faces[0].update(cx=100.0 - 15 * t))
    counts = [len(faces) for faces in history]
    assert counts[:7] == [1] * 7 and counts[-4:] == [0] * 4  # gone once its centre crosses x = 0
    assert all(f.track_id == 1 for faces in history for f in faces)


def test_new_face_joins_at_the_next_redetection_and_ids_stay_stable():
    scene = Scene()
    scene.faces = [{"cx": 150.0, "cy": 180.0, "s": 80.0}]

    def move(s: Scene, t: int) -> None:
        if t == 7:
            s.faces.append({"cx": 450.0, "cy": 180.0, "s": 80.0})

    history = run(make_tracker(detect_every=5), scene, 16, move=move)
    ids = [sorted(f.track_id for f in faces) for faces in history]
    assert ids[:10] == [[1]] * 10  # the new face waits for the re-detection at frame 10
    assert ids[10:] == [[1, 2]] * 6
    assert max(scene.align_batches) == 2 and len(scene.align_batches) == 16  # one batch per frame


def test_a_second_track_on_the_same_face_is_dropped_and_the_older_id_stays():
    """A detection too far off the track's box to match (IoU 0.43 < 0.5) starts a track that converges."""
    scene = Scene()
    scene.faces = [{"cx": 300.0, "cy": 180.0, "s": 100.0, "dx": 40.0}]
    history = run(make_tracker(detect_every=3, match_iou=0.5), scene, 8)
    assert scene.detect_calls == 3 and scene.align_batches[3] == 2  # frame 3 aligned both tracks ...
    assert all([f.track_id for f in faces] == [1] for faces in history)  # ... and kept only the first


def test_many_faces_keep_the_best_max_faces():
    scene = Scene()
    scene.faces = [{"cx": 40.0 + 60 * i, "cy": 180.0, "s": 40.0, "score": 0.5 + 0.04 * i} for i in range(10)]
    history = run(make_tracker(max_faces=3, detect_every=2), scene, 6)
    assert all(len(faces) == 3 for faces in history)
    kept_x = sorted(round(float(f.box_xyxy[0] + 20)) for f in history[-1])
    assert kept_x == [460, 520, 580]  # the three best detector scores
    assert scene.align_batches == [3] * 6


@pytest.mark.parametrize("hold", [0, 2])
def test_a_doubted_detection_is_reported_and_held_then_detected_again(hold):
    scene = Scene()
    scene.faces = [{"cx": 300.0, "cy": 180.0, "s": 100.0}]
    history = run(make_tracker(track_threshold=0.99, hold_frames=hold), scene, 6)  # the fake ATPN says 0.95
    cycle = [TrackState.DETECTED] + [TrackState.HELD] * hold  # the detector vouches, then its crop is held
    assert [[f.state for f in faces] for faces in history] == [[s] for s in (cycle * 6)[:6]]
    assert [f.track_id for faces in history for f in faces] == [1] * 6  # re-detected where it ended: same ID
    assert scene.detect_calls == len(range(0, 6, hold + 1))


def test_a_weak_detection_atpn_doubts_is_not_reported():
    """On an empty scene BlazeFace scores textures just over its threshold; ATPN's doubt then wins."""
    scene = Scene()
    scene.faces = [{"cx": 300.0, "cy": 180.0, "s": 100.0, "score": 0.55}]
    history = run(make_tracker(track_threshold=0.99, hold_frames=2, vouch_score=0.6), scene, 4)
    assert history == [[]] * 4
    assert scene.detect_calls == 4  # nothing alive: it searches again on every frame


def test_an_empty_scene_is_searched_every_idle_detect_every_frames():
    scene, tracker = Scene(), make_tracker(idle_detect_every=3)
    history = run(tracker, scene, 4)
    assert scene.detect_calls == 2 and history == [[]] * 4  # frames 0 and 3
    scene.faces = [{"cx": 300.0, "cy": 180.0, "s": 100.0}]  # a face walks in on frame 4 ...
    history = run(tracker, scene, 3)
    assert [len(faces) for faces in history] == [0, 0, 1]  # ... and is found on frame 6, the next search
    assert scene.detect_calls == 3
    scene.faces = []  # it leaves: the track ends, searching goes back to every third frame
    run(tracker, scene, 7)
    assert scene.detect_calls == 3 + 1 + 2  # the frame it ended on, then 3 and 6 frames later


def test_after_a_loss_it_searches_every_frame_for_idle_grace_frames_then_backs_off():
    """A face lost at a shot cut is usually back on the next frame: the grace frames find it at once."""
    scene, tracker = Scene(), make_tracker(idle_grace=5, idle_detect_every=3)
    run(tracker, scene, 10)
    assert scene.detect_calls == 5 + 2  # frames 0-4, then 5 and 8
    scene.faces = [{"cx": 300.0, "cy": 180.0, "s": 100.0}]
    assert [len(faces) for faces in run(tracker, scene, 3)] == [0, 1, 1]  # frame 10 skipped, found on 11
    scene.faces = []
    calls = scene.detect_calls
    run(tracker, scene, 9)  # the track ends on the first of these, then 5 grace frames and every 3rd
    assert scene.detect_calls - calls == 1 + 5 + 1


@pytest.mark.parametrize("a, b, expected", [
    ((0, 0, 10, 10), (0, 0, 10, 10), 1.0), ((0, 0, 10, 10), (5, 0, 15, 10), 1 / 3),
    ((0, 0, 10, 10), (20, 20, 30, 30), 0.0), ((0, 0, 0, 0), (0, 0, 0, 0), 0.0),
])
def test_iou(a, b, expected):
    assert iou(np.array(a, float), np.array(b, float)) == pytest.approx(expected)
