"""The annotated video (.mp4, mp4v), closed playable however the run ends, a full disk included."""
from __future__ import annotations

import math
import os
import shutil
from typing import Optional, Tuple

import numpy as np

from edge.errors import ConfigError
from edge.io.sinks import FrameResult, SinkOptions, output_path


MP4V_SIDES = (2, 8190)  # the sides (even) OpenCV's mp4v encoder takes; it refuses a 1 px side and above 8190
INDEX_BYTES_PER_FRAME = 16  # the MP4 index written on close: 7.5 B a frame measured (275 frames: 2,057 B)
SPARE_BYTES = 64 << 10  # beyond the next frame: FFmpeg's 32 KiB write buffer, the index's fixed part, a JSON line


class VideoSink:
    """The annotated frames as .mp4 (mp4v) at the first frame's size (made even, as the codec needs); a
    frame of another size is letterboxed into it, never dropped.

    OpenCV reports no failed write, and an MP4 whose index (written on close) found no room does not
    play. So before each frame the saver makes sure the disk and the file size limit leave room for
    the frame (its raw size bounds the encoded one), the index and a spare; without it the run ends
    in one line, and the video closes playable with every frame before."""

    wants_picture = True

    def __init__(self, path: str, options: SinkOptions = SinkOptions(flag="--save")) -> None:
        self.uri = self.path = output_path(path, options.flag)
        self.fps, self._flag = options.fps, options.flag
        self.frames = 0
        self._writer = None
        self._size = (0, 0)
        self._max_file = max_file_bytes(self.path)

    def write(self, result: FrameResult, picture: Optional[np.ndarray]) -> bool:
        import cv2

        image = result.frame.image if picture is None else picture

        if self._writer is None:
            self._size = video_size(image.shape)
        self._check_room(self._size[0] * self._size[1] * 3 + SPARE_BYTES + INDEX_BYTES_PER_FRAME * self.frames)
        if self._writer is None:
            self._writer = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self._size)
            if not self._writer.isOpened():
                raise ConfigError(f"{self._flag} {self.path}: OpenCV cannot write an mp4v video named like this; "
                                  "use a .mp4 path")
        self._writer.write(fit_into(image, self._size))
        self.frames += 1
        return True

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
        raise ConfigError(f"{self._flag} {self.path}: {why}, {needed >> 10} KiB kept for the next frame and the index); "
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
