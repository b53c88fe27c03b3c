"""Augmentation of one crop: mirror with landmark re-indexing, and cheap photometric damage.

Everything works on the 112 px uint8 patch after the warp (cheap on a 2-core CPU), never on the
full image. A mirrored face swaps left and right: the points are re-indexed (`crop.mirror_permutation`,
shared with the runtime's mirror averaging) and yaw and roll change sign.
"""
from __future__ import annotations

import cv2
import numpy as np

from edge.model.crop import MIRROR_POSE, mirror_permutation
from edge.train.config import AugmentConfig


def flip_patch(patch: np.ndarray, landmarks_px: np.ndarray, pose_deg: np.ndarray):
    """Mirror a patch; landmarks in its pixel coordinates [N,2] are mirrored and re-indexed."""
    width = patch.shape[1]
    pts = landmarks_px[mirror_permutation(len(landmarks_px))]  # fancy indexing: a new array
    pts[:, 0] = (width - 1) - pts[:, 0]
    pose = pose_deg * MIRROR_POSE
    return np.ascontiguousarray(patch[:, ::-1]), pts, pose


def photometric(patch: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Colour, grey, blur, occlusion, noise and JPEG damage, each with its own probability."""
    out = patch
    if rng.random() < cfg.colour_prob:
        gain = rng.uniform(0.6, 1.4) * rng.uniform(0.85, 1.15, size=3)  # contrast x per-channel tint
        out = np.clip(out.astype(np.float32) * gain + rng.uniform(-40, 40), 0, 255).astype(np.uint8)
    if rng.random() < cfg.gray_prob:
        out = cv2.cvtColor(cv2.cvtColor(out, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    if rng.random() < cfg.blur_prob:
        out = _blur(out, rng)
    if rng.random() < cfg.occlusion_prob:
        out = _occlude(out, rng)
    if rng.random() < cfg.noise_prob:
        noise = rng.normal(0.0, rng.uniform(3, 15), size=out.shape)
        out = np.clip(out + noise, 0, 255).astype(np.uint8)
    if rng.random() < cfg.jpeg_prob:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(15, 60))])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return out


def _blur(patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Defocus (Gaussian) or a short motion streak, as a moving camera gives."""
    if rng.random() < 0.5:
        return cv2.GaussianBlur(patch, (0, 0), rng.uniform(0.6, 2.0))
    k = int(rng.integers(3, 8))
    kernel = np.zeros((k, k), np.float32)
    kernel[k // 2, :] = 1.0 / k
    rot = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), rng.uniform(0, 180), 1.0)
    kernel = cv2.warpAffine(kernel, rot, (k, k))
    return cv2.filter2D(patch, -1, kernel / max(kernel.sum(), 1e-6))


def _occlude(patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A box of flat colour or noise over 10-40 % of the side (hands, microphones, glasses)."""
    size = patch.shape[0]
    h, w = (rng.uniform(0.1, 0.4, size=2) * size).astype(int) + 1
    y, x = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
    out = patch.copy()
    if rng.random() < 0.5:
        out[y:y + h, x:x + w] = rng.integers(0, 256, size=3, dtype=np.uint8)
    else:
        out[y:y + h, x:x + w] = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    return out


def texture_patch(size: int, rng: np.random.Generator) -> np.ndarray:
    """A face-free patch: smooth noise, stripes or a gradient, for the track head's negatives."""
    kind = rng.integers(0, 3)
    if kind == 0:
        cells = int(rng.integers(2, 16))
        small = rng.integers(0, 256, size=(cells, cells, 3), dtype=np.uint8)
        return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    t = np.linspace(0.0, 1.0, size, dtype=np.float32)
    a = rng.uniform(0, np.pi)
    ramp = np.cos(a) * t[None, :] + np.sin(a) * t[:, None]
    if kind == 1:
        ramp = 0.5 + 0.5 * np.sin(ramp * rng.uniform(6, 60))
    lo, hi = rng.uniform(0, 255, size=3), rng.uniform(0, 255, size=3)
    return (lo + ramp[:, :, None] * (hi - lo)).astype(np.uint8)
