"""The face detector: BlazeFace converted by our code, decoded by our numpy, on real images."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from conftest import model_path
from edge.errors import ModelError
from edge.detectors.blazeface_convert import CLASSIFICATORS, REGRESSORS
from edge.model.crop import CropBox, crop_from_landmarks
from edge.detectors.base import DetectorCascade, Detections, iou
from edge.detectors.blazeface import KEYPOINT_NAMES, FaceDetector, crop_for_detection, decode, ssd_anchors, weighted_nms
from edge.runtime import open_engine
from edge.eval.datasets import read_pts

# The astronaut's face in the 512x512 photo, read off the image: box and eye centres (x, y) px.
FACE_BOX = (180, 85, 270, 175)
RIGHT_EYE_PX, LEFT_EYE_PX = (202, 106), (246, 108)


@pytest.fixture(scope="module", params=["short", "full"])
def detector(request) -> FaceDetector:
    return FaceDetector(open_engine(str(model_path(f"blazeface_{request.param}.onnx")), threads=1))


def test_astronaut_one_face_with_mediapipe_score_and_keypoints(detector, astronaut_bgr):
    found = detector.detect(astronaut_bgr)
    assert len(found) == 1
    expected_score = {"short": 0.92, "full": 0.91}[detector.variant]  # what MediaPipe/LiteRT gives
    assert found.scores[0] == pytest.approx(expected_score, abs=0.01)
    x0, y0, x1, y1 = found.boxes_xyxy[0]
    assert x0 <= FACE_BOX[0] + 5 and y0 <= FACE_BOX[1] + 5 and x1 >= FACE_BOX[2] - 5 and y1 >= FACE_BOX[3] - 5
    assert (x1 - x0) < 1.4 * (FACE_BOX[2] - FACE_BOX[0])  # covers the face, not the whole photo
    right_eye, left_eye = found.keypoints[0, 0], found.keypoints[0, 1]
    assert np.hypot(*(right_eye - RIGHT_EYE_PX)) < 6 and np.hypot(*(left_eye - LEFT_EYE_PX)) < 6
    assert right_eye[0] < left_eye[0]  # the subject's right eye is on the image's left


@pytest.mark.parametrize("fill", [0, 128, 255])
def test_blank_image_has_no_face(detector, fill):
    assert len(detector.detect(np.full((360, 640, 3), fill, np.uint8))) == 0


def test_two_faces_side_by_side(detector, astronaut_bgr):
    head = astronaut_bgr[0:300, 100:350]
    found = detector.detect(np.concatenate([head, head], axis=1))
    assert len(found) == 2
    centres = sorted(float(b[0] + b[2]) / 2 for b in found.boxes_xyxy)
    assert centres[0] == pytest.approx(125, abs=15) and centres[1] == pytest.approx(375, abs=15)
    assert found.scores[0] >= found.scores[1]  # best first


def test_max_faces_keeps_the_best(astronaut_bgr):
    engine = open_engine(str(model_path("blazeface_short.onnx")), threads=1)
    head = astronaut_bgr[0:300, 100:350]
    two = np.concatenate([head, head // 2], axis=1)  # the darker copy scores lower
    assert len(FaceDetector(engine).detect(two)) == 2
    best = FaceDetector(engine, max_faces=1).detect(two)
    assert len(best) == 1 and best.boxes_xyxy[0, 0] < 250


def test_letterbox_maps_back_to_frame_pixels(detector, astronaut_bgr):
    """The head pasted off-centre into a bigger frame is found where it was pasted."""
    frame = np.zeros((400, 460, 3), np.uint8)
    frame[60:360, 180:430] = astronaut_bgr[0:300, 100:350]
    found = detector.detect(frame)
    assert len(found) == 1
    pasted_eye = (RIGHT_EYE_PX[0] - 100 + 180, RIGHT_EYE_PX[1] + 60)
    network_px = max(frame.shape) / detector.input_size  # frame pixels per network input pixel
    assert np.hypot(*(found.keypoints[0, 0] - pasted_eye)) < 2 * network_px


def test_cascade_uses_the_far_model_only_when_the_near_one_finds_nothing(astronaut_bgr):
    near, far = (FaceDetector(open_engine(str(model_path(f"blazeface_{v}.onnx")), threads=1)) for v in ("short", "full"))
    cascade = DetectorCascade([near, far])
    close = cascade.detect(astronaut_bgr)
    assert len(close) == 1 and close.crops == near.detect(astronaut_bgr).crops  # the short-range model's answer
    distant = np.zeros((360, 640, 3), np.uint8)  # the face ~17 px wide: too small for the 128 px model
    distant[100:196, 300:396] = cv2.resize(astronaut_bgr, (96, 96), interpolation=cv2.INTER_AREA)
    assert len(near.detect(distant)) == 0
    found = cascade.detect(distant)
    assert len(found) == 1 and found.crops == far.detect(distant).crops
    assert cascade.detectors == [far, near]  # the model that found the face goes first next time
    assert 300 <= found.boxes_xyxy[0, 0] < found.boxes_xyxy[0, 2] <= 396
    assert len(cascade.detect(np.zeros((360, 640, 3), np.uint8))) == 0
    assert len(cascade.detect(astronaut_bgr)) == 1  # a close face is still found, whichever model goes first


def test_anchor_layouts_match_the_models():
    short = ssd_anchors(128, (8, 16, 16, 16), interpolated=True)
    assert short.shape == (16 * 16 * 2 + 8 * 8 * 6, 2)
    np.testing.assert_allclose(short[:3], [[0.5 / 16, 0.5 / 16]] * 2 + [[1.5 / 16, 0.5 / 16]])
    np.testing.assert_allclose(short[512:519], [[0.5 / 8, 0.5 / 8]] * 6 + [[1.5 / 8, 0.5 / 8]])
    full = ssd_anchors(192, (4,), interpolated=False)
    assert full.shape == (48 * 48, 2)
    np.testing.assert_allclose(full[[0, 1, 48]], [[0.5 / 48, 0.5 / 48], [1.5 / 48, 0.5 / 48], [0.5 / 48, 1.5 / 48]])


def test_decode_offsets_are_input_pixels_around_the_anchor():
    anchors = np.array([[0.25, 0.5], [0.75, 0.5]], np.float32)
    raw = np.zeros((2, 16), np.float32)
    raw[0, :4] = [12.8, -12.8, 32, 64]  # +0.1, -0.1 of a 128 px input; 0.25 x 0.5 in size
    raw[0, 4:6] = [6.4, 0]  # right eye 0.05 right of the anchor
    boxes, scores, kps = decode(raw, np.array([2.0, -2.0], np.float32), anchors, 128, 0.5)
    assert len(scores) == 1 and scores[0] == pytest.approx(1 / (1 + math.exp(-2)))
    np.testing.assert_allclose(boxes[0], [0.35 - 0.125, 0.4 - 0.25, 0.35 + 0.125, 0.4 + 0.25], atol=1e-6)
    np.testing.assert_allclose(kps[0, 0], [0.30, 0.5], atol=1e-6)
    np.testing.assert_allclose(kps[0, 1], [0.25, 0.5], atol=1e-6)


def test_weighted_nms_merges_overlaps_by_score_and_keeps_apart_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60], [0, 0, 10, 10.5]], np.float32)
    scores = np.array([0.6, 0.9, 0.7, 0.3], np.float32)
    kps = np.repeat(boxes[:, None, :2], len(KEYPOINT_NAMES), axis=1)
    out_boxes, out_scores, out_kps = weighted_nms(boxes, scores, kps, 0.3)
    np.testing.assert_allclose(out_scores, [0.9, 0.7])  # the group keeps its best score
    w = np.array([0.9, 0.6, 0.3]) / 1.8
    np.testing.assert_allclose(out_boxes[0], w @ boxes[[1, 0, 3]], atol=1e-5)
    np.testing.assert_allclose(out_kps[0, 3], w @ boxes[[1, 0, 3], :2], atol=1e-5)
    np.testing.assert_allclose(out_boxes[1], boxes[2])
    assert len(weighted_nms(boxes, scores, kps, 0.3, max_out=1)[1]) == 1
    assert len(weighted_nms(boxes, scores, kps, 0.99)[1]) == 4  # nothing overlaps that much


def test_iou_of_hand_made_boxes():
    got = iou(np.array([0, 0, 10, 10.0]), np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30.0]]))
    np.testing.assert_allclose(got, [1.0, 50 / 150, 0.0])


@pytest.mark.parametrize("field, value, message", [
    ("boxes_xyxy", np.zeros((1, 5), np.float32), r"boxes_xyxy .* shape \(K, 4\)"),
    ("scores", np.zeros(2, np.float32), r"scores .* shape \(1,\)"),
    ("keypoints", np.zeros((1, 6, 2), np.float64), r"keypoints must be a float32"),
    ("keypoints", np.zeros((2, 6, 2), np.float32), r"keypoints .* shape \(1, K, 2\)"),
    ("scores", [0.5], r"scores .* but got list"),
    ("crops", (), r"one CropBox per face \(1\), got 0"),
])
def test_detections_reject_bad_arrays(field, value, message):
    good = dict(boxes_xyxy=np.zeros((1, 4), np.float32), scores=np.zeros(1, np.float32),
                keypoints=np.zeros((1, 6, 2), np.float32), crops=(CropBox(0, 0, 1),))
    Detections(**good)
    with pytest.raises(ValueError, match=message):
        Detections(**{**good, field: value})


def test_missing_or_corrupt_or_foreign_model_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        FaceDetector(open_engine(str(tmp_path / "nope.onnx")))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(model_path("blazeface_short.onnx").read_bytes()[:5000])
    with pytest.raises(ModelError, match="cannot load"):
        FaceDetector(open_engine(str(bad)))
    with pytest.raises(ModelError, match="not a converted BlazeFace"):
        FaceDetector(open_engine(str(model_path("atpn68.onnx"))))


def test_engine_outputs_have_the_converter_contract():
    engine = open_engine(str(model_path("blazeface_full.onnx")))
    assert engine.outputs[REGRESSORS].shape[1:] == (2304, 16)
    assert engine.outputs[CLASSIFICATORS].shape[1:] == (2304, 1)
    assert engine.inputs["image"].shape == (None, 3, 192, 192)  # dynamic batch


def test_first_crop_matches_the_landmark_crop_on_helen(shared_data):
    """On held-out HELEN faces the detector's crop lands where the 68 labels would put it."""
    import cv2

    detector = FaceDetector(open_engine(str(model_path("blazeface_short.onnx")), threads=1))
    size_err, centre_err, angle_err = [], [], []
    for pts_file in sorted((shared_data / "helen" / "test").glob("*.pts"))[:40]:
        labels = read_pts(str(pts_file))
        found = detector.detect(cv2.imread(str(pts_file.with_suffix(".jpg"))))
        assert len(found) >= 1, pts_file.name
        k = int(np.argmax(iou(np.r_[labels.min(0), labels.max(0)], found.boxes_xyxy.astype(float))))
        got = crop_for_detection(found.boxes_xyxy[k], found.keypoints[k], 1.6)
        want = crop_from_landmarks(labels, 1.6)
        size_err.append(abs(got.size / want.size - 1))
        centre_err.append(math.hypot(got.cx - want.cx, got.cy - want.cy) / want.size)
        angle_err.append(abs(got.angle_deg - want.angle_deg))
    assert np.median(size_err) < 0.06 and np.median(centre_err) < 0.04 and np.median(angle_err) < 3.0


def test_open_detector_picks_the_class_by_the_models_metadata():
    from edge.detectors import open_detector

    detector = open_detector(open_engine(str(model_path("blazeface_full.onnx")), threads=1), 1.45, 0.7)
    assert isinstance(detector, FaceDetector) and detector.variant == "full"
    assert (detector.crop_scale, detector.score_threshold) == (1.45, 0.7)
    with pytest.raises(ModelError, match=r"atpn68.onnx: not a face detector this project knows .* blazeface"):
        open_detector(open_engine(str(model_path("atpn68.onnx"))), 1.45)
