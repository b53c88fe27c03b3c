"""Pre- and post-processing of face crops, written once for every backend, training and evaluation.

A crop is a square, rotated window on the frame (`CropBox`). `crop_matrix` gives the 2x3 affine map
frame -> crop pixels; landmarks predicted in the crop go back through its inverse. Pose comes out
of the network in the (upright) crop frame; its roll is turned back by the crop angle. A mirrored
box cuts the same window flipped left-right: the network then sees the subject's left as right, so
its points come back re-indexed by `mirror_permutation` (training's flip uses the same one).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import List, Sequence, Tuple

import cv2
import numpy as np

from edge.model.spec import ModelSpec


@dataclass(frozen=True)
class CropBox:
    """Square window: centre (px), side (px) and angle (deg) of the face's eye line in the image."""

    cx: float
    cy: float
    size: float
    angle_deg: float = 0.0
    mirrored: bool = False  # the window flipped left-right (mirror averaging)

    def __post_init__(self) -> None:
        if not (self.size > 0 and math.isfinite(self.size)):
            raise ValueError(f"CropBox size must be a positive finite number, got {self.size}")

    def xyxy(self) -> Tuple[float, float, float, float]:
        """Axis-aligned bounds of the (unrotated) window, for drawing and IoU."""
        h = self.size / 2
        return (self.cx - h, self.cy - h, self.cx + h, self.cy + h)

    def mirror(self) -> "CropBox":
        return replace(self, mirrored=not self.mirrored)


def _pairs_68() -> List[Tuple[int, int]]:
    """The 300-W / iBUG scheme's left-right pairs (HELEN's labels)."""
    pairs = [(i, 16 - i) for i in range(8)]  # jaw
    pairs += [(17 + i, 26 - i) for i in range(5)]  # brows
    pairs += [(31, 35), (32, 34)]  # nostrils
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    pairs += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]  # outer lips
    return pairs + [(60, 64), (61, 63), (65, 67)]  # inner lips


def _pairs_98() -> List[Tuple[int, int]]:
    """WFLW's left-right pairs."""
    pairs = [(i, 32 - i) for i in range(16)]  # jaw
    pairs += [(33, 46), (34, 45), (35, 44), (36, 43), (37, 42), (38, 50), (39, 49), (40, 48), (41, 47)]  # brows
    pairs += [(55, 59), (56, 58)]  # nostrils
    pairs += [(60, 72), (61, 71), (62, 70), (63, 69), (64, 68), (65, 75), (66, 74), (67, 73)]  # eyes
    pairs += [(76, 82), (77, 81), (78, 80), (87, 83), (86, 84)]  # outer lips
    return pairs + [(88, 92), (89, 91), (95, 93), (96, 97)]  # inner lips, pupils


MIRROR_POSE = np.array([-1.0, 1.0, -1.0], dtype=np.float32)  # yaw and roll change sign in a mirror, pitch not


@lru_cache(maxsize=None)
def mirror_permutation(num_landmarks: int) -> np.ndarray:
    """Index map of a mirrored face: point i of the mirror image is point perm[i] of the face (an involution).

    Built once per scheme (training flips every other sample) and shared, so it is read-only."""
    pairs = {68: _pairs_68, 98: _pairs_98}.get(num_landmarks)
    if pairs is None:
        raise ValueError(f"mirror_permutation knows the 68- and 98-point schemes, got {num_landmarks} points")
    perm = np.arange(num_landmarks)
    for a, b in pairs():
        perm[a], perm[b] = b, a
    perm.setflags(write=False)
    return perm


def eye_centers(landmarks: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Centres of the subject's right eye (image left) and left eye, for 68 or 98 points."""
    n = len(landmarks)
    if n == 68:
        return landmarks[36:42].mean(0), landmarks[42:48].mean(0)
    if n == 98:
        return landmarks[60:68].mean(0), landmarks[68:76].mean(0)
    raise ValueError(f"eye_centers needs 68 or 98 landmarks, got {n}")


def crop_from_landmarks(landmarks: np.ndarray, scale: float, rotate: bool = True) -> CropBox:
    """The crop the tracker places from a face's landmarks (and training imitates).

    Side = scale * the longer side of the landmark box, measured in the face's own upright frame
    so rotation does not inflate it.
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    angle = 0.0
    if rotate:
        right, left = eye_centers(pts)
        angle = math.degrees(math.atan2(left[1] - right[1], left[0] - right[0]))
    a = math.radians(angle)
    rot = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])  # image -> upright
    up = pts @ rot.T
    lo, hi = up.min(0), up.max(0)
    center = ((lo + hi) / 2) @ rot  # back to image coordinates
    size = scale * float(max(hi - lo))
    return CropBox(float(center[0]), float(center[1]), max(size, 1.0), angle)


def crop_matrix(box: CropBox, out_size: int) -> np.ndarray:
    """2x3 affine map from frame pixels to crop pixels (rotating the face upright, then mirroring if asked)."""
    a = math.radians(box.angle_deg)
    s = out_size / box.size
    cos, sin = math.cos(a) * s, math.sin(a) * s
    # q = s * R(-a) (p - c) + out/2
    m = np.array([[cos, sin, 0.0], [-sin, cos, 0.0]])
    m[:, 2] = out_size / 2.0 - m[:, :2] @ np.array([box.cx, box.cy])
    if box.mirrored:  # x -> (out - 1) - x: the pixel grid flipped, as numpy's [:, ::-1] does
        m[0] = -m[0]
        m[0, 2] += out_size - 1
    return m


def invert_matrices(matrices: np.ndarray) -> np.ndarray:
    """Inverse of a batch of 2x3 affine maps, shape [B,2,3]."""
    lin = matrices[:, :, :2]
    inv = np.linalg.inv(lin)
    t = -np.einsum("bij,bj->bi", inv, matrices[:, :, 2])
    return np.concatenate([inv, t[:, :, None]], axis=2)


def warp_crops(frame_bgr: np.ndarray, boxes: Sequence[CropBox], spec: ModelSpec) -> Tuple[np.ndarray, np.ndarray]:
    """Cut, rotate, resize and normalise every box of a frame into one ATPN input batch.

    Returns (crops [B,3,S,S] float32 RGB normalised, matrices [B,2,3] frame->crop).
    """
    size = spec.input_size
    batch = np.empty((len(boxes), 3, size, size), dtype=np.float32)
    matrices = np.empty((len(boxes), 2, 3), dtype=np.float64)
    for i, box in enumerate(boxes):
        patch, matrices[i] = warp_patch(frame_bgr, box, size)
        batch[i] = normalize_patch(patch, spec)
    return batch, matrices


def warp_patch(frame_bgr: np.ndarray, box: CropBox, out_size: int) -> Tuple[np.ndarray, np.ndarray]:
    """One box -> (uint8 BGR patch, 2x3 matrix): the warp alone, so training can augment before normalising."""
    m = crop_matrix(box, out_size)
    patch = cv2.warpAffine(frame_bgr, m, (out_size, out_size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return patch, m


def normalize_patch(patch_bgr: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """uint8 HxWx3 BGR -> float32 3xHxW RGB, (x - mean) / std.

    OpenCV's blobFromImage does the swap, transpose and scaling in one pass (about 5x faster than
    numpy here, bit-identical)."""
    h, w = patch_bgr.shape[:2]
    return cv2.dnn.blobFromImage(patch_bgr, 1.0 / spec.std, (w, h), (spec.mean,) * 3, swapRB=True)[0]


def landmarks_to_frame(landmarks_norm: np.ndarray, matrices: np.ndarray, input_size: int) -> np.ndarray:
    """Landmarks in [0,1] crop coordinates [B,N,2] -> frame pixels [B,N,2]."""
    inv = invert_matrices(matrices)
    crop_px = landmarks_norm.astype(np.float64) * input_size
    return np.einsum("bij,bnj->bni", inv[:, :, :2], crop_px) + inv[:, None, :, 2]


def landmarks_to_crop(landmarks_px: np.ndarray, matrix: np.ndarray, input_size: int) -> np.ndarray:
    """Frame pixels [N,2] -> [0,1] crop coordinates: the training target for one crop."""
    return (landmarks_px @ matrix[:, :2].T + matrix[:, 2]) / input_size


def pose_to_frame(pose_crop: np.ndarray, angles_deg: np.ndarray) -> np.ndarray:
    """Yaw/pitch/roll predicted in the upright crop -> the frame (roll turns back by the crop angle)."""
    out = np.array(pose_crop, dtype=np.float32, copy=True)
    out[..., 2] = _wrap_deg(out[..., 2] + angles_deg)
    return out


def pose_to_crop(pose_frame: np.ndarray, angle_deg: float) -> np.ndarray:
    """Inverse of `pose_to_frame`, for training targets."""
    out = np.array(pose_frame, dtype=np.float32, copy=True)
    out[..., 2] = _wrap_deg(out[..., 2] - angle_deg)
    return out


def _wrap_deg(a: np.ndarray) -> np.ndarray:
    return (a + 180.0) % 360.0 - 180.0
