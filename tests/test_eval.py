"""Evaluation: metrics against hand-computed values, the synthetic sequences, the CLIs end to end."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest

from edge.eval import metrics
from edge.eval.datasets import write_pts


def _face(k: int, right: tuple, left: tuple) -> np.ndarray:
    """k points at the origin except the outer eye corners, so the inter-ocular distance is known."""
    pts = np.zeros((k, 2))
    a, b = metrics.OUTER_EYE_CORNERS[k]
    pts[a], pts[b] = right, left
    return pts


@pytest.mark.parametrize("k, right, left, shift, expected", [
    (68, (0, 0), (10, 0), (3, 4), 0.5),  # every point 5 px off, eyes 10 px apart
    (68, (2, 2), (2, 42), (0, 2), 0.05),  # vertical eye line: 2 / 40
    (98, (0, 0), (0, 20), (2, 0), 0.1),  # WFLW corners 60 and 72
])
def test_nme_uniform_shift(k, right, left, shift, expected):
    truth = _face(k, right, left)
    assert metrics.nme(truth + shift, truth) == pytest.approx(expected)


def test_nme_one_point_off_is_averaged_over_all_points():
    truth = _face(68, (0, 0), (10, 0))
    pred = truth.copy()
    pred[30] += (6.8, 0)  # 6.8 px / 68 points / 10 px
    assert metrics.nme(pred, truth) == pytest.approx(0.01)


def test_nme_by_region_splits_the_face_and_averages_back_to_the_nme():
    truth = np.stack([_face(68, (0, 0), (10, 0))] * 2)
    pred = truth.copy()
    pred[0, 48:68] += (0, 1.0)  # the mouth 1 px off, eyes 10 px apart
    pred[1] = np.nan  # a face not found
    got = metrics.nme_by_region(pred, truth)
    assert got["mouth"][0] == pytest.approx(0.1) and all(got[r][0] == 0 for r in ("jaw", "brows", "nose", "eyes"))
    sizes = {name: b - a for name, (a, b) in metrics.REGIONS_68.items()}
    assert sum(sizes.values()) == 68 and all(math.isinf(v[1]) for v in got.values())
    assert sum(got[r][0] * n for r, n in sizes.items()) / 68 == pytest.approx(metrics.nme(pred, truth)[0])


def test_nme_batch_and_missing_face_is_inf():
    truth = np.stack([_face(68, (0, 0), (10, 0))] * 2)
    pred = truth + 1.0
    pred[1] = np.nan
    got = metrics.nme(pred, truth)
    assert got[0] == pytest.approx(math.sqrt(2) / 10) and math.isinf(got[1])


@pytest.mark.parametrize("bad_pred, bad_truth, message", [
    (np.zeros((68, 2)), np.zeros((67, 2)), "same shape"),
    (np.zeros((5, 2)), np.zeros((5, 2)), "68 or 98"),
])
def test_nme_rejects_bad_shapes(bad_pred, bad_truth, message):
    with pytest.raises(ValueError, match=message):
        metrics.nme(bad_pred, bad_truth)


def test_failure_rate_counts_above_threshold_and_missed_faces():
    assert metrics.failure_rate([0.05, 0.10, 0.15, np.inf]) == pytest.approx(0.5)  # 0.10 itself passes


@pytest.mark.parametrize("errors, expected", [
    ([0.04995], 0.5005),  # CED steps to 1 at grid point 0.0500: half a step of trapezoid + 0.05, / 0.1
    ([0.0, np.inf], 0.5),  # half the faces perfect, half missed
    ([np.inf, 0.2], 0.0),
    ([0.02, 0.05, 0.2], (0.08 + 0.05) / 3 / 0.1),  # continuous value; the grid is within 1e-3 of it
])
def test_auc_against_hand_values(errors, expected):
    assert metrics.auc(errors) == pytest.approx(expected, abs=1e-3)


def test_ced_curve_is_the_fraction_at_or_below_each_threshold():
    x, y = metrics.ced_curve([0.01, 0.03, 0.5, np.nan])
    assert x[0] == 0 and x[-1] == pytest.approx(0.1) and len(x) == 1001
    assert y[0] == 0 and y[np.searchsorted(x, 0.02)] == 0.25 and y[-1] == 0.5


def test_summary_separates_missed_faces_from_mean_nme():
    s = metrics.summarize_nme([0.02, 0.04, np.inf])
    assert (s["faces"], s["found"]) == (3, 2)
    assert s["nme_mean"] == pytest.approx(0.03) and s["fr_10"] == pytest.approx(1 / 3)


def test_pose_mae_wraps_roll_across_180():
    got = metrics.pose_mae(np.array([[10.0, -5.0, 179.0]]), np.array([[0.0, 5.0, -179.0]]))
    assert got == pytest.approx({"yaw_mae": 10.0, "pitch_mae": 10.0, "roll_mae": 2.0, "mean_mae": 22 / 3})


def test_empty_inputs_say_so():
    with pytest.raises(ValueError, match="no errors"):
        metrics.auc([])
    with pytest.raises(ValueError, match="at least one face"):
        metrics.pose_mae(np.zeros((0, 3)), np.zeros((0, 3)))


def _dot_still(size: int = 200):
    """A black still whose 68 'landmarks' ring its centre, with one white dot on landmark 30."""
    angles = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    pts = size / 2 + 50 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    still = np.zeros((size, size, 3), np.uint8)
    x, y = np.round(pts[30]).astype(int)
    pts[30] = (x, y)
    still[y - 1:y + 2, x - 1:x + 2] = 255
    return still, pts


def test_synthetic_frames_move_the_landmarks_with_the_image():
    from edge.eval.sequences import SequenceConfig, make_sequence

    still, pts = _dot_still()
    config = SequenceConfig(frames=60, max_blur_sigma=0.0, key_every=10, exit_frames=20)
    frames = list(make_sequence(still, pts, seed=3, config=config))
    visible = [f for f in frames if f.visible]
    assert 0 < len(visible) < len(frames), "the face should leave the frame and come back"
    checked = 0
    for f in visible:
        x, y = f.landmarks[30]
        xi, yi = int(round(x)), int(round(y))
        if not (8 <= xi < f.image.shape[1] - 8 and 8 <= yi < f.image.shape[0] - 8):
            continue
        checked += 1
        window = f.image[yi - 8:yi + 9, xi - 8:xi + 9].max(axis=2).astype(float)
        assert window.max() > 150
        ys, xs = np.mgrid[yi - 8:yi + 9, xi - 8:xi + 9]
        centroid = np.array([(xs * window).sum(), (ys * window).sum()]) / window.sum()
        assert np.linalg.norm(centroid - (x, y)) < 0.6, "the dot is not where its landmark went"
    assert checked > len(visible) // 2


def test_synthetic_sequences_are_deterministic_and_seed_dependent():
    from edge.eval.sequences import SequenceConfig, make_sequence

    still, pts = _dot_still()
    config = SequenceConfig(frames=8, key_every=3, exit_frames=0)
    a, b, c = (list(make_sequence(still, pts, seed=s, config=config)) for s in (5, 5, 6))
    assert all(np.array_equal(x.image, y.image) and np.array_equal(x.landmarks, y.landmarks) for x, y in zip(a, b))
    assert not np.allclose(a[-1].landmarks, c[-1].landmarks)


# --- the commands end to end, on the astronaut photo with a hand-made .pts ---------------------------

ASTRONAUT_EYES = ((205.0, 102.0), (246.0, 104.0))  # eye centres read off the photo by hand (px)


def schematic_face(right_eye: tuple, left_eye: tuple) -> np.ndarray:
    """68 points in the 300-W order on a drawn face: units of half the eye distance, eye line along x."""
    t = np.linspace(np.pi, 0, 17)
    jaw = np.stack([1.9 * np.cos(t), 0.2 + 3.5 * np.sin(t)], 1)
    brow = np.stack([np.linspace(-1.7, -0.3, 5), [-0.6, -0.8, -0.85, -0.8, -0.7]], 1)
    nose = np.array([[0, -0.3], [0, 0.15], [0, 0.6], [0, 1.0], [-0.5, 1.3], [-0.25, 1.4], [0, 1.45],
                     [0.25, 1.4], [0.5, 1.3]])
    eye = np.array([[-1.45, 0], [-1.15, -0.2], [-0.85, -0.2], [-0.55, 0], [-0.85, 0.2], [-1.15, 0.2]])
    other_eye = eye[[3, 2, 1, 0, 5, 4]] * (-1, 1)
    a = np.linspace(np.pi, -np.pi, 12, endpoint=False)
    mouth = np.stack([0.9 * np.cos(a), 2.1 - 0.35 * np.sin(a)], 1)
    b = np.linspace(np.pi, -np.pi, 8, endpoint=False)
    inner = np.stack([0.6 * np.cos(b), 2.1 - 0.1 * np.sin(b)], 1)
    unit = np.concatenate([jaw, brow, brow[::-1] * (-1, 1), nose, eye, other_eye, mouth, inner])
    r, l = np.asarray(right_eye, float), np.asarray(left_eye, float)
    half = (l - r) / 2
    rot = np.array([[half[0], -half[1]], [half[1], half[0]]])  # unit x -> half the eye line
    return unit @ rot.T + (r + l) / 2


@pytest.fixture
def astronaut_folder(tmp_path, astronaut_bgr):
    import cv2

    from conftest import model_path

    from edge.config import ModelsConfig

    model_path(os.path.basename(ModelsConfig().atpn)), model_path(os.path.basename(ModelsConfig().detector))
    folder = tmp_path / "faces"
    folder.mkdir()
    cv2.imwrite(str(folder / "astronaut.png"), astronaut_bgr)
    write_pts(str(folder / "astronaut.pts"), schematic_face(*ASTRONAUT_EYES))
    return folder


def test_schematic_face_has_its_eyes_where_asked():
    from edge.model.crop import eye_centers

    pts = schematic_face((10.0, 20.0), (30.0, 24.0))
    right, left = eye_centers(pts)
    assert np.allclose(right, (10, 20)) and np.allclose(left, (30, 24))
    assert metrics.interocular(pts) == pytest.approx(1.45 * np.hypot(20, 4))


@pytest.mark.parametrize("boxes", ["detector", "labels"])
def test_landmarks_command_writes_csv_json_and_ced(astronaut_folder, tmp_path, boxes):
    import csv
    import json

    import cv2

    from edge.eval.__main__ import main

    out = tmp_path / "out"
    assert main(["landmarks", "--images", str(astronaut_folder), "--boxes", boxes, "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "landmarks.csv")))
    summary = json.load(open(out / "landmarks.json"))
    assert [r["image"] for r in rows] == ["astronaut.png"] and rows[0]["found"] == "True"
    assert (summary["faces"], summary["found"], summary["boxes"]) == (1, 1, boxes)
    assert 0 < float(rows[0]["nme"]) == pytest.approx(summary["nme_mean"], rel=1e-5)
    regions = summary["nme_by_region"]
    assert set(regions) == {"jaw", "brows", "nose", "eyes", "mouth"}
    assert regions["eyes"] == pytest.approx(float(rows[0]["nme_eyes"]), rel=1e-5)
    if boxes == "detector":
        assert float(rows[0]["match_iou"]) > 0.5  # the hand-made labels sit on the detected face
    plot = cv2.imread(str(out / "ced.png"))
    assert plot is not None and plot.shape[2] == 3 and (plot < 128).any()
    sheet = cv2.imread(str(out / "worst.png"))  # one face: the worst 5 % is that face, labels and prediction drawn
    assert sheet.shape == (200, 6 * 200, 3)
    first = sheet[:, :200].reshape(-1, 3).astype(int)
    assert ((first[:, 1] > 180) & (first[:, 2] < 120)).any() and ((first[:, 2] > 200) & (first[:, 1] < 100)).any()


def test_landmarks_baseline_is_scored_on_the_same_faces_by_region(astronaut_folder, tmp_path):
    import json

    from edge.eval.__main__ import main
    from edge.eval.datasets import write_teacher_npz

    teacher = tmp_path / "teacher.npz"
    pts = schematic_face(*ASTRONAUT_EYES)
    pts[48:68] += (0.0, 0.1 * metrics.interocular(pts))  # the baseline's mouth is off by a tenth of the eye span
    write_teacher_npz(str(teacher), str(astronaut_folder), ["astronaut.png"], pts[None], np.zeros((1, 3)),
                      np.array([True]))
    out = tmp_path / "out"
    assert main(["landmarks", "--images", str(astronaut_folder), "--boxes", "labels", "--baseline", str(teacher),
                 "--out", str(out)]) == 0
    base = json.load(open(out / "landmarks.json"))["baseline"]
    assert base["nme_by_region"]["mouth"] == pytest.approx(0.1, rel=1e-4) and base["nme_by_region"]["eyes"] == 0
    assert base["nme_mean"] == pytest.approx(0.1 * 20 / 68, rel=1e-4)  # labels stored as float32


def test_pose_command_against_teacher_labels(astronaut_folder, tmp_path):
    import json

    from edge.eval.__main__ import main
    from edge.eval.datasets import write_teacher_npz

    teacher = tmp_path / "teacher.npz"
    pts = schematic_face(*ASTRONAUT_EYES)
    write_teacher_npz(str(teacher), str(astronaut_folder), ["astronaut.png"], pts[None], np.array([[0.0, 0.0, 3.0]]),
                      np.array([True]))
    out = tmp_path / "out"
    assert main(["pose", "--teacher", str(teacher), "--boxes", "labels", "--out", str(out)]) == 0
    summary = json.load(open(out / "pose.json"))
    assert summary["faces"] == 1 and summary["mean_mae"] == pytest.approx(
        np.mean([summary["yaw_mae"], summary["pitch_mae"], summary["roll_mae"]]))


def test_tracking_command_runs_the_tracker_on_a_short_sequence(astronaut_folder, tmp_path):
    import csv
    import json

    from edge.eval.__main__ import main

    out = tmp_path / "out"
    assert main(["tracking", "--images", str(astronaut_folder), "--sequences", "1", "--frames", "12",
                 "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "tracking.csv")))
    summary = json.load(open(out / "tracking.json"))
    assert len(rows) == 12 and summary["frames"] == 12 and summary["stills"] == ["astronaut.png"]
    assert rows[0]["detector"] == "True", "the first frame has no track: the detector must run"
    assert 0 < summary["detector_fraction"] <= 1


@pytest.mark.parametrize("argv, message", [
    (["landmarks", "--images", "/no/such/folder"], "not a folder"),
    (["landmarks", "--images", "{empty}"], "no .pts files"),
    (["pose", "--teacher", "/no/such/teacher.npz"], "teacher labels not found"),
    (["tracking", "--images", "{empty}", "--frames", "1"], "--frames must be >= 2"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    from edge.eval.__main__ import main

    argv = [a.replace("{empty}", str(tmp_path)) for a in argv]
    assert main(argv + ["--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


class OracleAligner:
    """A perfect ATPN: the true landmarks when the crop holds the face's centre, else a lost-face score."""

    def __init__(self, spec) -> None:
        self.spec = spec
        self.truth = np.zeros((68, 2))

    def network_boxes(self, boxes):
        return list(boxes)

    def run_crops(self, crops, matrices, boxes):
        from edge.pipeline.aligner import Alignment
        from edge.model.crop import invert_matrices

        size = self.spec.input_size
        centres = invert_matrices(matrices)[:, :, :2] @ np.full(2, size / 2) + invert_matrices(matrices)[:, :, 2]
        sides = size / np.linalg.norm(matrices[:, :, 0], axis=1)
        face = (self.truth.min(0) + self.truth.max(0)) / 2
        landmarks, track = [], []
        for centre, side in zip(centres, sides):
            on_face = bool(np.all(np.abs(face - centre) < side / 3))
            landmarks.append(self.truth if on_face else self.truth * 0 + centre)
            track.append(0.95 if on_face else 0.05)
        n = len(crops)
        return Alignment(np.array(landmarks), np.zeros((n, 3), np.float32), np.array(track, np.float32),
                         np.zeros((n, 1, 28, 28), np.float32))


def test_tracking_with_a_perfect_aligner_tracks_and_rarely_detects(astronaut_bgr):
    """The real detector and tracker on a synthetic sequence: with perfect landmarks the tracker
    follows every visible frame and calls the detector only at the start, every `detect_every`
    frames and while the face is away."""
    from conftest import model_path

    from edge.config import TrackerConfig
    from edge.eval.sequences import SequenceConfig, make_sequence
    from edge.eval.tracking import CountingDetector, run_sequence, summarize
    from edge.model.spec import ModelSpec
    from edge.detectors.blazeface import FaceDetector
    from edge.pipeline.loop import FacePipeline
    from edge.pipeline.tracker import Tracker
    from edge.runtime import open_engine

    oracle = OracleAligner(ModelSpec())
    config = SequenceConfig(frames=90, exit_frames=36)

    def frames():
        for frame in make_sequence(astronaut_bgr, schematic_face(*ASTRONAUT_EYES), seed=11, config=config):
            oracle.truth = frame.landmarks
            yield frame

    with open_engine(str(model_path("blazeface_short.onnx"))) as engine:  # the cheaper detector: this tests the tracking
        detector = FaceDetector(engine, crop_scale=1.6)
        tracker = Tracker(TrackerConfig(detect_every=30), crop_scale=1.6)
        counter = CountingDetector(detector)
        pipeline = FacePipeline(counter, oracle, tracker)
        rows = run_sequence(pipeline, counter, frames(), 0)
    s = summarize(rows)
    assert s["visible_frames"] >= 40 and s["tracked_fraction"] >= 0.95
    assert s["tracked_within_15"] == pytest.approx(s["tracked_fraction"])  # an oracle: every tracked frame is exact
    assert s["nme_tracked_mean"] == pytest.approx(0.0, abs=1e-6)  # float32 landmarks
    assert s["detector_fraction_visible"] <= 0.1 < s["detector_fraction"]  # it searched while the face was away
    assert s["false_face_fraction_away"] == 0.0
