"""Frame sources: the Source interface, video files, image folders and frames in memory (uri.py opens them).

Files and folders are read in order, every frame, and end where they end; live cameras and streams
are read in their own thread keeping only the newest frame, and reopened when they drop (see
camera.py and LiveOptions). A frame that fails to decode is skipped and counted in `skipped`, never
fatal.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np

from edge.errors import SourceError
from edge.types import Frame

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
MAX_BAD_FRAMES_IN_A_ROW = 50  # a file this broken is not worth reading further


@dataclass(frozen=True)
class LiveOptions:
    """How a live source rides out a lost camera or stream instead of ending the run.

    A source that drops is reopened after `reconnect_s`, the wait doubling after each failed try up
    to `reconnect_max_s`, for `give_up_s` at most (0 = as long as it takes: an edge box outlives
    its network). Streams (RTSP, HTTP) also get FFmpeg timeouts, so a server that accepts but never
    answers fails in `open_timeout_s` (OpenCV's default is 30 s) and one that goes silent mid-run
    counts as dropped after `read_timeout_s`."""

    reconnect_s: float = 0.5
    reconnect_max_s: float = 10.0
    give_up_s: float = 0.0
    open_timeout_s: float = 10.0
    read_timeout_s: float = 5.0


class Source:
    """Iterate for Frames; close() when done (or use `with`)."""

    uri: str = ""
    live: bool = False  # a camera/stream: frames are dropped rather than queued
    photos: bool = False  # independent pictures (a folder of images), not frames of one scene
    length: Optional[int] = None  # frames, when known in advance (progress bars)
    skipped: int = 0  # frames that failed to decode

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device or file; calling it twice is harmless."""

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# The first bytes of the containers FFmpeg reads: MP4/MOV (ftyp/moov/mdat at offset 4), Matroska/WebM,
# AVI (RIFF), FLV, MPEG-PS, MPEG-TS (sync byte G).
_CONTAINER_MAGIC = ((4, (b"ftyp", b"moov", b"mdat", b"wide", b"free")), (0, (b"\x1aE\xdf\xa3", b"RIFF", b"FLV")),
                    (0, (b"\x00\x00\x01\xba",)), (0, (b"G",)))


def why_unreadable(path: str) -> str:
    """What is wrong with a file OpenCV will not open, from its first bytes: a 'convert it' only helps
    a real video whose codec OpenCV lacks."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError as exc:
        return f"{exc.strerror}; check its permissions"
    if not head:
        return "the file is empty; record or copy it again"
    if not any(head[at:at + len(m)] == m for at, magics in _CONTAINER_MAGIC for m in magics):
        return "not a video file (no known container header); pass a video, an image, a folder or a camera URI"
    return "OpenCV has no decoder for its codec, or the file is damaged; convert it to H.264 .mp4 (e.g. ffmpeg -i IN OUT.mp4)"


class VideoFileSource(Source):
    """A video file read in order; timestamps from the file's frame rate."""

    def __init__(self, path: str) -> None:
        import cv2

        if not os.path.isfile(path):
            raise SourceError(f"video file not found: {path}; check the path (see --help for input URIs)")
        self.uri = path
        self._cap = cv2.VideoCapture(path)
        if not self._cap.isOpened():
            raise SourceError(f"cannot open video {path}: {why_unreadable(path)}")
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.length = count if count > 0 else None
        self.fps = self._cap.get(cv2.CAP_PROP_FPS) or 30.0

    def __iter__(self) -> Iterator[Frame]:
        index, bad = 0, 0
        while True:
            ok = self._cap.grab()
            if not ok:
                if self.length is None or index + self.skipped >= self.length or bad >= MAX_BAD_FRAMES_IN_A_ROW:
                    return  # the video ended (or is broken beyond use)
                self.skipped, bad = self.skipped + 1, bad + 1
                continue
            ok, image = self._cap.retrieve()
            if not ok or image is None:
                self.skipped, bad = self.skipped + 1, bad + 1
                continue
            bad = 0
            position = index + self.skipped
            yield Frame(image, index, 1000.0 * position / self.fps)
            index += 1

    def close(self) -> None:
        self._cap.release()


class FolderSource(Source):
    """Images of a folder in sorted name order (or one image file), at a nominal frame rate; each frame
    carries its file name. Photos, so by default each is processed on its own (config `stills`)."""

    photos = True

    def __init__(self, folder: str, fps: float = 30.0) -> None:
        self.uri = folder
        path = Path(folder)
        self.files = [path] if path.is_file() else sorted(
            p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise SourceError(f"no images in folder {folder}; expected files ending in {', '.join(IMAGE_SUFFIXES)}")
        self.length = len(self.files)
        self.fps = fps

    def __iter__(self) -> Iterator[Frame]:
        import cv2

        index = 0
        for position, path in enumerate(self.files):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                self.skipped += 1
                continue
            yield Frame(image, index, 1000.0 * position / self.fps, name=path.name)
            index += 1


class MemorySource(Source):
    """Frames already in memory (benchmarks time the pipeline, not the decoder)."""

    def __init__(self, images: Sequence[np.ndarray], fps: float = 30.0, uri: str = "memory") -> None:
        self.uri = uri
        self.images = list(images)
        self.length = len(self.images)
        self.fps = fps

    def __iter__(self) -> Iterator[Frame]:
        for index, image in enumerate(self.images):
            yield Frame(image, index, 1000.0 * index / self.fps)
