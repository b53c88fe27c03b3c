"""Where training crops go: the tracker's crop with its real-life jitter, or one that lost the face.

Positives imitate what the runtime feeds ATPN: the crop from the previous frame's landmarks
(crop_from_landmarks), off by some motion, or an axis-aligned detector-like box. Negatives imitate
a track going wrong: the crop drifted off the face, grew or shrank far too much, turned upside
down, or sits on background.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np

from edge.model.crop import CropBox, crop_from_landmarks
from edge.train.config import AugmentConfig

DRIFT_MIN, DRIFT_MAX = 0.45, 1.0  # centre off by this fraction of the side
GROWN = (2.2, 3.5)  # scale factors no tracker step produces on a held face
SHRUNK = (0.25, 0.45)


def positive_box(landmarks: np.ndarray, scale: float, cfg: AugmentConfig, rng: np.random.Generator) -> CropBox:
    """The tracker's crop for these landmarks, jittered in centre, scale and angle."""
    rotate = rng.random() >= cfg.no_rotation_prob
    base = crop_from_landmarks(landmarks, scale, rotate=rotate)
    dx, dy = rng.uniform(-cfg.shift, cfg.shift, size=2) * base.size
    angle = base.angle_deg + (rng.uniform(-cfg.rotate_deg, cfg.rotate_deg) if rotate else 0.0)
    return CropBox(base.cx + dx, base.cy + dy, base.size * rng.uniform(cfg.scale_min, cfg.scale_max), angle)


def negative_box(landmarks: np.ndarray, image_hw: Tuple[int, int], scale: float,
                 rng: np.random.Generator) -> Optional[CropBox]:
    """A crop that no longer frames the face; None means 'use a synthetic texture instead'."""
    base = crop_from_landmarks(landmarks, scale)
    kind = rng.random()
    if kind < 0.3:
        a = rng.uniform(0.0, 2.0 * math.pi)
        d = rng.uniform(DRIFT_MIN, DRIFT_MAX) * base.size
        return CropBox(base.cx + d * math.cos(a), base.cy + d * math.sin(a), base.size, base.angle_deg)
    if kind < 0.45:
        return CropBox(base.cx, base.cy, base.size * rng.uniform(*GROWN), base.angle_deg)
    if kind < 0.6:
        return CropBox(base.cx, base.cy, base.size * rng.uniform(*SHRUNK), base.angle_deg)
    if kind < 0.75:
        return CropBox(base.cx, base.cy, base.size, base.angle_deg + rng.uniform(90.0, 270.0))
    if kind < 0.9:
        return background_box(landmarks, image_hw, base.size, rng)
    return None


def background_box(landmarks: np.ndarray, image_hw: Tuple[int, int], face_size: float,
                   rng: np.random.Generator, tries: int = 8) -> Optional[CropBox]:
    """A box inside the image that overlaps the landmark box by at most 10 % of its area."""
    h, w = image_hw
    lo, hi = landmarks.min(0), landmarks.max(0)
    for _ in range(tries):
        side = face_size * rng.uniform(0.3, 0.8)
        if side >= min(h, w):
            continue
        cx, cy = rng.uniform(side / 2, w - side / 2), rng.uniform(side / 2, h - side / 2)
        ox = max(0.0, min(cx + side / 2, hi[0]) - max(cx - side / 2, lo[0]))
        oy = max(0.0, min(cy + side / 2, hi[1]) - max(cy - side / 2, lo[1]))
        if ox * oy <= 0.1 * side * side:
            return CropBox(cx, cy, side, rng.uniform(-30.0, 30.0))
    return None
