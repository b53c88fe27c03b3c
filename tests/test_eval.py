"""Evaluation: metrics against hand-computed values, the synthetic sequences, the CLIs end to end."""
from __future__ import annotations

import math

import numpy as np
import pytest

from edge.eval import metrics


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
