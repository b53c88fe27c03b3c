"""Where results go: JSON lines, an annotated video, a live window. Each is opened only if asked for.

Every line and frame reaches the file as it is made, so a crash or a stop never loses one already
computed; a disk that fills ends the run in one line with both files whole (see VideoSaver).
"""
from __future__ import annotations

import json
import math
import os
import shutil
from typing import Dict, List, Optional, Sequence, Tuple

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


def output_path(path: str, flag: str) -> str:
    """`path` with its folder made, checked before any work is done (a long run must not fail at its
    first frame or its end): a one-line ConfigError when a file stands where a folder must be, or the
    path is a folder."""
    try:
        ensure_parent(path)
    except OSError as exc:
        folder = os.path.dirname(os.path.abspath(path))
        while not os.path.isdir(folder) and not os.path.exists(folder):
            folder = os.path.dirname(folder)
        why = f"{folder} is a file, not a folder" if not os.path.isdir(folder) else exc.strerror
        raise ConfigError(f"{flag} {path}: cannot write there ({why}); pick another path") from exc
    if os.path.isdir(path):
        raise ConfigError(f"{flag} {path}: is a folder; name a file in it")
    return path


class JsonLinesWriter:
    """One JSON object per frame: index, t_ms, faces, per-stage ms.

    Unbuffered: each line goes to the OS whole as it is written, so a crash or a stop loses none. A
    write that fails (disk full, file size limit) is cut back to the last whole line and ends the run."""

    def __init__(self, path: str) -> None:
        self.path = output_path(path, "--json")
        try:
            self._file = open(path, "wb", buffering=0)
        except OSError as exc:
            raise ConfigError(f"--json {path}: cannot write there ({exc.strerror}); pick another path") from exc
        self.lines = 0
        self._whole = 0  # bytes of whole lines in the file

    def write(self, frame: Frame, faces: Sequence[Face], stage_ms: Dict[str, float]) -> None:
        line = {"index": frame.index, "t_ms": round(frame.t_ms, 2), "faces": [face_record(f) for f in faces],
                "ms": {k: round(v, 3) for k, v in stage_ms.items()}}
        if frame.gap_s:  # the first frame after a live source came back: the seconds without frames before it
            line["gap_s"] = round(frame.gap_s, 2)
        data = (json.dumps(line) + "\n").encode()
        try:
            rest = memoryview(data)
            while rest:
                rest = rest[self._file.write(rest):]  # a write cut short by a full disk fails on the rest
        except OSError as exc:
            self._cut_to_whole_lines()
            raise ConfigError(f"--json {self.path}: cannot write line {self.lines + 1} ({exc.strerror}); the "
                              f"{self.lines} before it are whole") from exc
        self._whole += len(data)
        self.lines += 1

    def _cut_to_whole_lines(self) -> None:
        try:
            os.ftruncate(self._file.fileno(), self._whole)
        except OSError:
            pass  # a device (/dev/full, a pipe) cannot be cut; there is no file to keep whole either

    def close(self) -> None:
        self._file.close()


MP4V_SIDES = (2, 8190)  # the sides (even) OpenCV's mp4v encoder takes; it refuses a 1 px side and above 8190
INDEX_BYTES_PER_FRAME = 16  # the MP4 index written on close: 7.5 B a frame measured (275 frames: 2,057 B)
SPARE_BYTES = 64 << 10  # beyond the next frame: FFmpeg's 32 KiB write buffer, the index's fixed part, a JSON line


class VideoSaver:
    """The annotated frames as .mp4 (mp4v) at the first frame's size (made even, as the codec needs); a
    frame of another size is letterboxed into it, never dropped.

    OpenCV reports no failed write, and an MP4 whose index (written on close) found no room does not
    play. So before each frame the saver makes sure the disk and the file size limit leave room for
    the frame (its raw size bounds the encoded one), the index and a spare; without it the run ends
    in one line, and the video closes playable with every frame before."""

    def __init__(self, path: str, fps: float) -> None:
        self.path, self.fps = output_path(path, "--save"), fps
        self.frames = 0
        self._writer = None
        self._size = (0, 0)
        self._max_file = max_file_bytes(self.path)

    def write(self, image: np.ndarray) -> None:
        import cv2

        if self._writer is None:
            self._size = video_size(image.shape)
        self._check_room(self._size[0] * self._size[1] * 3 + SPARE_BYTES + INDEX_BYTES_PER_FRAME * self.frames)
        if self._writer is None:
            self._writer = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self._size)
            if not self._writer.isOpened():
                raise ConfigError(f"--save {self.path}: OpenCV cannot write an mp4v video named like this; "
                                  "use a .mp4 path")
        self._writer.write(fit_into(image, self._size))
        self.frames += 1

    def _check_room(self, needed: int) -> None:
        written = self._writer is not None and os.path.exists(self.path)  # (not if moved away while written)
        size = os.path.getsize(self.path) if written else 0
        free = shutil.disk_usage(os.path.dirname(os.path.abspath(self.path))).free
        if min(free, self._max_file - size) >= needed:
            return
        kept = f"the video is closed after {self.frames} frames and plays" if self.frames else "no video was written"
        if free < needed:
            why, fix = f"the disk is nearly full ({free >> 10} KiB free", "free space or save elsewhere"
        else:
            why, fix = f"the file is at its size limit ({self._max_file >> 10} KiB", \
                "save to another file system or raise `ulimit -f`"
        raise ConfigError(f"--save {self.path}: {why}, {needed >> 10} KiB kept for the next frame and the index); "
                          f"{kept}; {fix}")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()


def max_file_bytes(path: str) -> int:
    """The largest file this process may write at `path`: the file system's limit (PC_FILESIZEBITS read as
    POSIX says, signed: 2 GiB on FAT32) or the process's (`ulimit -f`), whichever is smaller."""
    import resource

    bits = os.pathconf(os.path.dirname(os.path.abspath(path)), "PC_FILESIZEBITS")
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    return min(2 ** (bits - 1) - 1, limit if limit != resource.RLIM_INFINITY else 2 ** 63)


def video_size(shape: Tuple[int, ...]) -> Tuple[int, int]:
    """(width, height) for a frame of `shape`: even, within the codec's sides, scaled down to fit if larger."""
    low, high = MP4V_SIDES
    h, w = shape[:2]
    scale = min(1.0, high / max(w, h))
    width, height = (min(high, max(low, 2 * math.ceil(side * scale / 2))) for side in (w, h))
    return width, height


def fit_into(image: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """`image` scaled to fit `size` (width, height), centred on black (letterboxed); unchanged when it has that
    size. (detector.letterbox is the detector's input crop, an affine box, not a picture.)"""
    import cv2

    h, w = image.shape[:2]
    width, height = size
    if (w, h) == (width, height):
        return image
    scale = min(width / w, height / h)
    fit_w, fit_h = min(width, max(1, round(w * scale))), min(height, max(1, round(h * scale)))
    out = np.zeros((height, width, 3), np.uint8)
    x, y = (width - fit_w) // 2, (height - fit_h) // 2
    out[y:y + fit_h, x:x + fit_w] = cv2.resize(image, (fit_w, fit_h),
                                               interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return out


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
