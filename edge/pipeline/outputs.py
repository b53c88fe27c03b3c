"""Where results go: JSON lines, an annotated video, a live window. Each is opened only if asked for.

The JSON writer flushes every line, so a crash or Ctrl-C never loses a frame already computed.
"""
from __future__ import annotations

import json
import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from edge.errors import ConfigError
from edge.fileio import ensure_parent
from edge.pipeline.stats import FrameTimer
from edge.types import Face, Frame

WINDOW = "ATPN Edge (q or Esc to quit)"


def face_record(face: Face) -> Dict[str, object]:
    return {"id": face.track_id, "state": face.state.value, "score": round(face.score, 4),
            "box": _rounded(face.box_xyxy), "landmarks": _rounded(face.landmarks_px),
            "pose": _rounded(face.pose_ypr_deg)}


def _rounded(a: np.ndarray) -> List:
    return np.round(np.asarray(a, dtype=np.float64), 2).tolist()


class JsonLinesWriter:
    """One JSON object per frame: index, t_ms, faces, per-stage ms."""

    def __init__(self, path: str) -> None:
        try:
            ensure_parent(path)
            self._file = open(path, "w", buffering=1)  # line-buffered: every line reaches the file
        except OSError as exc:
            raise ConfigError(f"--json {path}: cannot write there ({exc.strerror}); pick a writable path") from exc

    def write(self, frame: Frame, faces: Sequence[Face], stage_ms: Dict[str, float]) -> None:
        line = {"index": frame.index, "t_ms": round(frame.t_ms, 2), "faces": [face_record(f) for f in faces],
                "ms": {k: round(v, 3) for k, v in stage_ms.items()}}
        self._file.write(json.dumps(line) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class VideoSaver:
    """The annotated frames as .mp4 (mp4v), opened at the first frame's size."""

    def __init__(self, path: str, fps: float) -> None:
        self.path, self.fps = path, fps
        self._writer = None

    def write(self, image: np.ndarray) -> None:
        import cv2

        if self._writer is None:
            ensure_parent(self.path)
            height, width = image.shape[:2]
            self._writer = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (width, height))
            if not self._writer.isOpened():
                raise ConfigError(f"--save {self.path}: OpenCV cannot write this file; use a writable .mp4 path")
        self._writer.write(image)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()


class Window:
    """A live window; `show` returns False once the user asked to quit."""

    def show(self, image: np.ndarray) -> bool:
        import cv2

        cv2.imshow(WINDOW, image)
        return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)

    def close(self) -> None:
        import cv2

        cv2.destroyAllWindows()


def has_display() -> bool:
    """A screen to draw on: $DISPLAY (or Wayland) is set and this OpenCV was built with a GUI."""
    import re

    import cv2

    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    gui = re.search(r"GUI:\s*(\S+)", cv2.getBuildInformation())
    return bool(gui) and gui.group(1).upper() not in ("NONE", "NO")  # type: ignore[union-attr]


def open_window(mode: str) -> Optional[Window]:
    """--display auto|on|off -> a Window or None; `on` without a display is a one-line error."""
    if mode == "off" or (mode == "auto" and not has_display()):
        return None
    if not has_display():
        raise ConfigError("--display on needs a screen: $DISPLAY is not set or OpenCV has no GUI; "
                          "use --display off (and --save out.mp4) on a headless machine")
    return Window()


class Outputs:
    """Everything a frame's results go to; the overlay is drawn only when something shows it."""

    def __init__(self, overlay: object, save: Optional[str] = None, json_path: Optional[str] = None,
                 window: Optional[Window] = None, fps: float = 30.0) -> None:
        self.overlay = overlay  # anything with annotate(image, faces) -> image (see render.py)
        self.saver = VideoSaver(save, fps) if save else None
        self.window = window
        self.json = JsonLinesWriter(json_path) if json_path else None

    def show(self, frame: Frame, faces: Sequence[Face], timer: FrameTimer) -> bool:
        """Draw, save, display; False when the user closed the window."""
        if self.saver is None and self.window is None:
            return True
        with timer.stage("render"):
            scene = self.overlay.annotate(frame.image, faces)  # type: ignore[attr-defined]
        with timer.stage("output"):
            if self.saver is not None:
                self.saver.write(scene)
            return self.window.show(scene) if self.window is not None else True

    def record(self, frame: Frame, faces: Sequence[Face], stage_ms: Dict[str, float]) -> None:
        if self.json is not None:
            self.json.write(frame, faces, stage_ms)

    def close(self) -> None:
        for sink in (self.saver, self.window, self.json):
            if sink is not None:
                sink.close()
