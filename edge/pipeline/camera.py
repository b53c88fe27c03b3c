"""Live sources (V4L2/USB and CSI cameras, RTSP streams): read in a thread, newest frame only.

A reader thread keeps only the latest frame, so a slow pipeline drops frames instead of building
up lag. A camera that reports a failed read is reopened with exponential backoff; when it does not
come back, or when no frame arrives for `stall_s` (a stream that hangs), iterating raises a
one-line SourceError.
"""
from __future__ import annotations

import os
import re
import sys
import threading
import time
from typing import Any, Callable, Iterator, Optional

from edge.errors import SourceError
from edge.pipeline.sources import Source
from edge.types import Frame

CSI_PIPELINE = ("nvarguscamerasrc sensor-id={sensor} ! video/x-raw(memory:NVMM), width={width}, height={height}, "
                "framerate={fps}/1 ! nvvidconv ! video/x-raw, format=BGRx ! videoconvert ! video/x-raw, format=BGR "
                "! appsink drop=true max-buffers=1")


class LiveSource(Source):
    """Frames from `open_capture()` (a cv2.VideoCapture-like object), newest only, reopened on loss."""

    live = True

    def __init__(self, uri: str, open_capture: Callable[[], Any], retries: int = 5, backoff_s: float = 0.25,
                 stall_s: float = 10.0) -> None:
        self.uri = uri
        self.stall_s = stall_s
        self._open = open_capture
        self._retries = retries
        self._backoff_s = backoff_s
        self._cap = open_capture()
        if not self._cap.isOpened():
            raise SourceError(f"cannot open camera {uri}: the device did not start; check it is connected and "
                              "not used by another program, or pass --input demo")
        self._cond = threading.Condition()
        self._latest: Optional[Any] = None
        self._sequence = 0
        self._error: Optional[str] = None
        self._stop = False
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._read_forever, name=f"camera {uri}", daemon=True)
        self._thread.start()

    def _read_forever(self) -> None:
        while not self._stop:
            ok, image = self._cap.read()
            if ok and image is not None:
                with self._cond:
                    self._latest, self._sequence = image, self._sequence + 1
                    self._cond.notify_all()
            elif not self._stop and not self._reconnect():
                return

    def _reconnect(self) -> bool:
        """Reopen with exponential backoff; on failure leave a one-line error for the consumer."""
        delay = self._backoff_s
        for _ in range(self._retries):
            self._cap.release()
            time.sleep(delay)
            if self._stop:
                return False
            self._cap = self._open()
            if self._cap.isOpened():
                return True
            delay *= 2
        waited = self._backoff_s * (2 ** self._retries - 1)
        with self._cond:
            self._error = (f"camera {self.uri} stopped delivering frames and did not come back after "
                           f"{self._retries} retries ({waited:.1f} s); check its connection, then run again")
            self._cond.notify_all()
        return False

    def __iter__(self) -> Iterator[Frame]:
        seen, index = 0, 0
        while True:
            with self._cond:
                woke = self._cond.wait_for(lambda: self._sequence > seen or self._error is not None or self._stop,
                                           timeout=self.stall_s)
                if not woke:
                    raise SourceError(f"camera {self.uri} delivered no frame for {self.stall_s:g} s; "
                                      "check the device or stream, then run again")
                if self._stop:
                    return
                if self._error is not None and self._sequence == seen:
                    raise SourceError(self._error)
                image, seen = self._latest, self._sequence
            yield Frame(image, index, 1000.0 * (time.monotonic() - self._t0))
            index += 1

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=2.0)
        self._cap.release()


def _video_capture(target: Any, api_name: str) -> Callable[[], Any]:
    import cv2

    api = getattr(cv2, api_name)
    return lambda: cv2.VideoCapture(target, api)


def open_v4l2(uri: str) -> LiveSource:
    """`0`, `/dev/video0` or `v4l2:///dev/video0`."""
    device = uri[len("v4l2://"):] if uri.startswith("v4l2://") else uri
    if device.isdigit():
        device = f"/dev/video{device}" if sys.platform.startswith("linux") else device
    if device.startswith("/dev/") and not os.path.exists(device):
        raise SourceError(f"camera {device} not found; list cameras with `v4l2-ctl --list-devices` "
                          "or use --input demo")
    target: Any = int(device) if device.isdigit() else device
    api = "CAP_V4L2" if sys.platform.startswith("linux") else "CAP_ANY"
    return LiveSource(uri, _video_capture(target, api))


def has_gstreamer() -> bool:
    import cv2

    found = re.search(r"GStreamer:\s*(\w+)", cv2.getBuildInformation())
    return bool(found) and found.group(1).upper() == "YES"  # type: ignore[union-attr]


def open_csi(uri: str, width: int = 1280, height: int = 720, fps: int = 30) -> LiveSource:
    """`csi://0`: the Jetson camera through nvarguscamerasrc; needs an OpenCV built with GStreamer."""
    sensor = uri[len("csi://"):] or "0"
    if not sensor.isdigit():
        raise SourceError(f"bad CSI camera {uri!r}: expected csi://N with N the sensor id, e.g. csi://0")
    if not has_gstreamer():
        raise SourceError("csi:// needs OpenCV with GStreamer, which pip's opencv-python lacks; on a Jetson use "
                          "the system OpenCV (apt install python3-opencv, or JetPack's) in a venv made with "
                          "--system-site-packages")
    pipeline = CSI_PIPELINE.format(sensor=sensor, width=width, height=height, fps=fps)
    return LiveSource(uri, _video_capture(pipeline, "CAP_GSTREAMER"))


def open_stream(url: str) -> LiveSource:
    """`rtsp://...` (or http): decoded by OpenCV's FFmpeg, read live."""
    return LiveSource(url, _video_capture(url, "CAP_FFMPEG"))


def first_camera_or_none() -> Optional[Source]:
    """Camera 0 when it exists and opens (what `run_camera.py` with no input wants), else None."""
    try:
        return open_v4l2("0")
    except SourceError:
        return None
