"""Overlay drawing: tiny annotators with one `annotate(image, faces)` method, composed in a list."""
from __future__ import annotations

import math
from typing import Callable, List, Sequence

import cv2
import numpy as np

from edge.types import Face

GREEN, RED, BLUE, YELLOW, WHITE = (0, 220, 0), (0, 0, 255), (255, 80, 0), (0, 220, 255), (255, 255, 255)


class BoxAnnotator:
    def __init__(self, color=GREEN, thickness: int = 1) -> None:
        self.color, self.thickness = color, thickness

    def annotate(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        for face in faces:
            x0, y0, x1, y1 = (int(round(v)) for v in face.box_xyxy)
            cv2.rectangle(image, (x0, y0), (x1, y1), self.color, self.thickness, cv2.LINE_AA)
        return image


class LandmarksAnnotator:
    def __init__(self, color=YELLOW, radius: int = 1) -> None:
        self.color, self.radius = color, radius

    def annotate(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        for face in faces:
            for x, y in face.landmarks_px:
                cv2.circle(image, (int(round(x)), int(round(y))), self.radius, self.color, -1, cv2.LINE_AA)
        return image


class PoseAxisAnnotator:
    """The head's x (red), y (green) and forward (blue) axes at the face centre, half a box long."""

    def annotate(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        for face in faces:
            x0, y0, x1, y1 = face.box_xyxy
            centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
            for tip, color in zip(pose_axes(face.pose_ypr_deg, 0.5 * float(x1 - x0)), (RED, GREEN, BLUE)):
                cv2.line(image, _pt(centre), _pt(centre + tip), color, 2, cv2.LINE_AA)
        return image


class LabelAnnotator:
    """Track id and score above the box."""

    def annotate(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        for face in faces:
            org = (int(face.box_xyxy[0]), max(int(face.box_xyxy[1]) - 4, 10))
            _text(image, f"#{face.track_id} {face.score:.2f}", org)
        return image


class FpsAnnotator:
    """The loop's windowed FPS in the top-left corner (read through a callable at draw time)."""

    def __init__(self, fps: Callable[[], float]) -> None:
        self.fps = fps

    def annotate(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        _text(image, f"FPS {self.fps():.1f}  faces {len(faces)}", (8, 20))
        return image


class Overlay:
    """Annotators applied in order on a copy of the frame."""

    def __init__(self, annotators: Sequence[object]) -> None:
        self.annotators = list(annotators)

    def annotate(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        scene = image.copy()
        for annotator in self.annotators:
            scene = annotator.annotate(scene, faces)  # type: ignore[attr-defined]
        return scene


def default_overlay(fps: Callable[[], float]) -> Overlay:
    return Overlay([BoxAnnotator(), LandmarksAnnotator(), PoseAxisAnnotator(), LabelAnnotator(), FpsAnnotator(fps)])


def pose_axes(pose_ypr_deg: np.ndarray, length: float) -> List[np.ndarray]:
    """Image-plane tips (dx, dy) of the head's x (toward its left ear), y (down) and forward (nose) axes.

    The README's convention, in image axes (x right, y down): yaw > 0 turns the nose toward the
    image's right, pitch > 0 lifts it, roll is the eye line's angle. Orthographic projection.
    """
    yaw, pitch, roll = (math.radians(float(v)) for v in pose_ypr_deg)
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    r_pitch = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])
    r_yaw = np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]])
    r_roll = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    axes = r_roll @ r_yaw @ r_pitch @ np.diag([1.0, 1.0, -1.0])  # columns: x, y, forward (toward the camera)
    return [length * axes[:2, i] for i in range(3)]


def _pt(p: np.ndarray):
    return int(round(float(p[0]))), int(round(float(p[1])))


def _text(image: np.ndarray, text: str, org) -> None:
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, WHITE, 1, cv2.LINE_AA)
