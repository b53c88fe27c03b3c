"""Synthetic video made from one labelled still, so every frame's true landmarks are known.

A virtual camera films the still pasted on a textured background: the face pans, zooms and rolls
smoothly (random key poses eased into each other), blurs at times, and leaves the frame and comes
back. Each frame is the still warped by a similarity transform; the true landmarks are the still's
landmarks under the same transform. Seeded: the same still and seed give the same frames.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Tuple

import cv2
import numpy as np


@dataclass(frozen=True)
class SequenceConfig:
    """What the motion looks like. Sizes are the face's landmark-box long side in frame pixels."""

    frames: int = 150
    width: int = 640
    height: int = 360
    face_px: Tuple[float, float] = (70.0, 170.0)
    max_roll_deg: float = 35.0
    max_blur_sigma: float = 2.5
    key_every: int = 25  # frames between random key poses: ~1 s of motion at 25-30 fps
    exit_frames: int = 60  # the face leaves, stays away and comes back over this many frames, once; 0: never

    def __post_init__(self) -> None:
        if self.frames < 2 or self.key_every < 1:
            raise ValueError(f"a sequence needs frames >= 2 and key_every >= 1, got {self.frames}, {self.key_every}")
        if not 0 < self.face_px[0] <= self.face_px[1] < min(self.width, self.height):
            raise ValueError(f"face_px must be 0 < min <= max < the frame's short side, got {self.face_px}")
        if self.exit_frames and self.exit_frames + 2 > self.frames:
            raise ValueError(f"exit_frames ({self.exit_frames}) must leave room in {self.frames} frames")


@dataclass(frozen=True)
class SyntheticFrame:
    image: np.ndarray  # BGR uint8 [H,W,3]
    landmarks: np.ndarray  # [K,2] true landmarks in frame pixels
    in_frame: float  # fraction of the landmarks inside the frame: 1 visible, 0 away, else partly out
    matrix: np.ndarray  # [2,3] still -> frame

    @property
    def visible(self) -> bool:
        return self.in_frame == 1.0


def config_for_length(frames: int) -> SequenceConfig:
    """The default motion for `frames` frames; short sequences get a proportionally short exit."""
    return SequenceConfig(frames=frames, exit_frames=min(SequenceConfig.exit_frames, frames // 4))


def make_sequence(still_bgr: np.ndarray, landmarks: np.ndarray, seed: int,
                  config: SequenceConfig = SequenceConfig()) -> Iterator[SyntheticFrame]:
    """Frames of one synthetic sequence, made one at a time (a sequence is ~100 MB as a whole)."""
    rng = np.random.default_rng(seed)
    pts = np.asarray(landmarks, dtype=np.float64)
    matrices = _camera_path(rng, pts, config)
    blur = np.clip(_eased_walk(rng, config.frames, config.key_every, -config.max_blur_sigma, config.max_blur_sigma),
                   0.0, None)  # blurred about half the time
    background = _background(rng, config.width, config.height)
    mask = np.ones(still_bgr.shape[:2], np.float32)
    mask[[0, -1], :] = mask[:, [0, -1]] = 0.0  # feathers the still's edge once warped
    for m, sigma in zip(matrices, blur):
        moved = _transform(pts, m)
        yield SyntheticFrame(_render(still_bgr, mask, background, m, float(sigma)), moved,
                             _in_frame(moved, config.width, config.height), m)


def _camera_path(rng: np.random.Generator, pts: np.ndarray, cfg: SequenceConfig) -> np.ndarray:
    """[F,2,3] still -> frame similarities: eased random size/roll/position plus one exit excursion."""
    n = cfg.frames
    lo, hi = pts.min(0), pts.max(0)
    face_centre, face_size = (lo + hi) / 2, float(max(hi - lo))
    size = _eased_walk(rng, n, cfg.key_every, *cfg.face_px)
    roll = _eased_walk(rng, n, cfg.key_every, -cfg.max_roll_deg, cfg.max_roll_deg)
    half = size / np.sqrt(2.0)  # the rotated face box stays inside the frame (bar the exit)
    cx = cfg.width / 2 + _eased_walk(rng, n, cfg.key_every, -0.5, 0.5) * np.clip(cfg.width - 2 * half, 0, None)
    cy = cfg.height / 2 + _eased_walk(rng, n, cfg.key_every, -0.5, 0.5) * np.clip(cfg.height - 2 * half, 0, None)
    cx = cx + _exit_offset(rng, n, cfg, cx)
    out = np.empty((n, 2, 3))
    for i in range(n):
        m = cv2.getRotationMatrix2D((float(face_centre[0]), float(face_centre[1])), float(roll[i]),
                                    float(size[i] / face_size))
        m[:, 2] += (cx[i], cy[i]) - face_centre
        out[i] = m
    return out


def _exit_offset(rng: np.random.Generator, n: int, cfg: SequenceConfig, cx: np.ndarray) -> np.ndarray:
    """Horizontal offset that walks the face out past the nearer side and back, eased, once.

    Each third of the exit (out, away, back) takes exit_frames / 3 frames, so the face moves at a
    walking pace rather than jumping out.
    """
    off = np.zeros(n)
    if not cfg.exit_frames:
        return off
    start = int(rng.integers(1, n - cfg.exit_frames))
    ramp = max(cfg.exit_frames // 3, 1)
    t = np.arange(n) - start
    shape = np.minimum(_ease(np.clip(t / ramp, 0, 1)), _ease(np.clip((cfg.exit_frames - t) / ramp, 0, 1)))
    middle = cx[start + cfg.exit_frames // 2]
    leave_left = middle < cfg.width / 2
    distance = (middle if leave_left else cfg.width - middle) + cfg.face_px[1]  # past the edge, whatever the roll
    return shape * distance * (-1 if leave_left else 1)


def _eased_walk(rng: np.random.Generator, n: int, every: int, lo: float, hi: float) -> np.ndarray:
    """Random key values in [lo, hi] every `every` frames, eased in between (smooth, no jumps)."""
    keys = rng.uniform(lo, hi, size=n // every + 2)
    t = np.arange(n) / every
    k = np.floor(t).astype(int)
    w = _ease(t - k)
    return keys[k] * (1 - w) + keys[k + 1] * w


def _ease(x: np.ndarray) -> np.ndarray:
    """Smoothstep: zero velocity at both ends, so the motion speeds up and slows down like a hand."""
    return x * x * (3 - 2 * x)


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Low-frequency, muted texture (a wall, a room): something to track onto that holds no face."""
    grey = rng.integers(50, 210, size=(6, 10, 1))
    coarse = np.clip(grey + rng.integers(-25, 26, size=(6, 10, 3)), 0, 255).astype(np.uint8)
    fine = rng.integers(-10, 11, size=(height, width, 3))
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.int32)
    return np.clip(smooth + fine, 0, 255).astype(np.uint8)


def _render(still: np.ndarray, mask: np.ndarray, background: np.ndarray, m: np.ndarray, sigma: float) -> np.ndarray:
    h, w = background.shape[:2]
    face = cv2.warpAffine(still, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    alpha = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    frame = cv2.blendLinear(face, background, alpha, 1.0 - alpha)
    if sigma > 0.3:  # below this a Gaussian kernel barely changes a pixel
        frame = cv2.GaussianBlur(frame, (0, 0), sigma)
    return frame


def _transform(pts: np.ndarray, m: np.ndarray) -> np.ndarray:
    return cv2.transform(pts[None].astype(np.float64), m)[0]


def _in_frame(pts: np.ndarray, width: int, height: int) -> float:
    return float(np.all((pts >= 0) & (pts <= (width - 1, height - 1)), axis=1).mean())
