"""The small values that flow between the loop's stages: a frame in, faces out."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One image from a source: BGR uint8 HxWx3, its position in the stream and its time (ms).

    `gap_s` > 0 on the first frame after a live source dropped and came back: the seconds without
    frames before it, so the loop knows the scene may have changed and the output shows the hole."""

    image: np.ndarray
    index: int
    t_ms: float
    gap_s: float = 0.0
    name: str = ""  # the file it came from, for a folder of photos


class TrackState(Enum):
    """Where a face's crop came from on this frame (MediaPipe's two ways of placing it)."""

    DETECTED = "detected"  # a detector box placed the crop: a new face
    TRACKED = "tracked"  # the previous frame's landmarks placed the crop
    HELD = "held"  # a recent detection's crop, kept for a few frames while ATPN doubts the face


@dataclass(frozen=True)
class Face:
    """One face on one frame, in frame pixels; pose is yaw, pitch, roll in degrees."""

    track_id: int
    state: TrackState
    box_xyxy: np.ndarray  # [4] bounds of the landmarks
    landmarks_px: np.ndarray  # [K,2]
    pose_ypr_deg: np.ndarray  # [3]
    score: float  # ATPN's tracking score: probability the crop holds a well-framed face
