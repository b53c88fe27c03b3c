"""Face-alignment and head-pose accuracy metrics, pure numpy (shared by training, evaluation and tests).

Conventions are those of the 300-W / WFLW literature so numbers compare with published ones:
NME is normalised by the outer eye corners (inter-ocular), a face fails when its NME exceeds 0.10,
and AUC@0.10 is the trapezoid area under the CED curve sampled every 0.0001 up to 0.10, divided by 0.10.
A face that was not found at all has NME = inf: it counts in FR and AUC as a failure.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

FAILURE_THRESHOLD = 0.10
CED_STEP = 0.0001
POSE_ANGLES = ("yaw", "pitch", "roll")

# Outer eye corners, 0-based: (subject's right eye, subject's left eye).
OUTER_EYE_CORNERS: Dict[int, Tuple[int, int]] = {68: (36, 45), 98: (60, 72)}
# The 68-point scheme's parts, 0-based [start, stop): where a model or a labeller differs.
REGIONS_68: Dict[str, Tuple[int, int]] = {"jaw": (0, 17), "brows": (17, 27), "nose": (27, 36), "eyes": (36, 48),
                                          "mouth": (48, 68)}


def interocular(landmarks: np.ndarray) -> np.ndarray:
    """Distance between the outer eye corners, [N,K,2] -> [N] (or [K,2] -> scalar)."""
    pts = np.asarray(landmarks, dtype=np.float64)
    k = pts.shape[-2]
    if k not in OUTER_EYE_CORNERS:
        raise ValueError(f"inter-ocular normalisation needs 68 or 98 landmarks, got {k}")
    a, b = OUTER_EYE_CORNERS[k]
    return np.linalg.norm(pts[..., a, :] - pts[..., b, :], axis=-1)


def nme(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Mean point-to-point error over the landmarks, divided by the true inter-ocular distance.

    pred, truth: [N,K,2] (or [K,2]) in the same pixels; returns [N] (or a scalar). Rows of `pred`
    that hold NaN (a face that was not found) give inf.
    """
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    if p.shape != t.shape:
        raise ValueError(f"pred and truth must have the same shape, got {p.shape} and {t.shape}")
    err = np.linalg.norm(p - t, axis=-1).mean(axis=-1) / interocular(t)
    return np.where(np.isnan(err), np.inf, err)


def nme_by_region(pred: np.ndarray, truth: np.ndarray) -> Dict[str, np.ndarray]:
    """NME of each REGIONS_68 part alone, with the whole face's inter-ocular distance: {region: [N]}."""
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    if p.shape != t.shape or t.shape[-2] != 68:
        raise ValueError(f"regions need pred and truth of 68 landmarks each, got {p.shape} and {t.shape}")
    dist = np.linalg.norm(p - t, axis=-1) / interocular(t)[..., None]
    dist = np.where(np.isnan(dist), np.inf, dist)
    return {name: dist[..., a:b].mean(axis=-1) for name, (a, b) in REGIONS_68.items()}


def ced_curve(errors: np.ndarray, threshold: float = FAILURE_THRESHOLD,
              step: float = CED_STEP) -> Tuple[np.ndarray, np.ndarray]:
    """Cumulative error distribution: (thresholds [T], fraction of faces with NME <= threshold [T])."""
    e = _errors(errors)
    x = np.linspace(0.0, threshold, int(round(threshold / step)) + 1)
    y = (e[:, None] <= x[None, :]).mean(axis=0)
    return x, y


def auc(errors: np.ndarray, threshold: float = FAILURE_THRESHOLD, step: float = CED_STEP) -> float:
    """Area under the CED up to `threshold` (trapezoid rule), normalised to [0, 1]."""
    x, y = ced_curve(errors, threshold, step)
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0 / threshold)


def failure_rate(errors: np.ndarray, threshold: float = FAILURE_THRESHOLD) -> float:
    """Fraction of faces with NME above `threshold` (missed faces included)."""
    return float((_errors(errors) > threshold).mean())


def summarize_nme(errors: np.ndarray) -> Dict[str, float]:
    """The numbers a landmark report quotes: mean NME over found faces, FR@10, AUC@10."""
    e = _errors(errors)
    found = e[np.isfinite(e)]
    return {
        "faces": int(e.size),
        "found": int(found.size),
        "nme_mean": float(found.mean()) if found.size else float("nan"),
        "nme_median": float(np.median(found)) if found.size else float("nan"),
        "fr_10": failure_rate(e),
        "auc_10": auc(e),
    }


def angle_error_deg(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """|pred - truth| per angle, wrapped so 179 vs -179 is 2 degrees. [N,3] -> [N,3]."""
    d = np.asarray(pred, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
    return np.abs((d + 180.0) % 360.0 - 180.0)


def pose_mae(pred: np.ndarray, truth: np.ndarray) -> Dict[str, float]:
    """Mean absolute yaw/pitch/roll error in degrees, and their mean."""
    err = angle_error_deg(pred, truth).reshape(-1, 3)
    if err.shape[0] == 0:
        raise ValueError("pose_mae needs at least one face")
    out = {f"{name}_mae": float(err[:, i].mean()) for i, name in enumerate(POSE_ANGLES)}
    out["mean_mae"] = float(err.mean())
    return out


def _errors(errors: np.ndarray) -> np.ndarray:
    e = np.asarray(errors, dtype=np.float64).reshape(-1)
    if e.size == 0:
        raise ValueError("no errors to summarise: the evaluation found no faces")
    return np.where(np.isnan(e), np.inf, e)
