"""Live sources (V4L2/USB and CSI cameras, RTSP/HTTP streams): read in a thread, newest frame only.

A reader thread keeps only the latest frame, so a slow pipeline drops frames instead of building
up lag. A source that drops (a failed read: unplugged, server gone, stream silent past its read
timeout) is reopened with backoff (LiveOptions), logged once when lost and once when back; the
first frame after it carries the outage in `Frame.gap_s`, so the loop can reset its tracks and the
JSON shows the hole. Iterating raises a one-line SourceError only when the source does not come
back within `give_up_s` (when set), or when a read hangs for `stall_s` outside an outage (a capture
without read timeouts that stopped answering).
"""
from __future__ import annotations

import os
import re
import socket
import sys
import threading
import time
from typing import Any, Callable, Iterator, List, Optional, Tuple
from urllib.parse import urlsplit

from edge.errors import SourceError, without_password
from edge.io.sources import LiveOptions, Source
from edge.types import Frame

CSI_PIPELINE = ("nvarguscamerasrc sensor-id={sensor} ! video/x-raw(memory:NVMM), width={width}, height={height}, "
                "framerate={fps}/1 ! nvvidconv ! video/x-raw, format=BGRx ! videoconvert ! video/x-raw, format=BGR "
                "! appsink drop=true max-buffers=1")
DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}
Log = Callable[[str], None]


class LiveSource(Source):
    """Frames from `open_capture()` (a cv2.VideoCapture-like object), newest only, reopened on loss."""

    live = True
    kind = "camera"  # how messages name it

    def __init__(self, uri: str, open_capture: Callable[[], Any], options: LiveOptions = LiveOptions(),
                 log: Log = lambda line: None, stall_s: float = 30.0) -> None:
        # stall_s outlasts FFmpeg's read timeout and V4L2's 10 s select, so those report a failed read
        # (and the source is reopened) before a hung read is given up on
        self.uri = uri
        self.options = options
        self.stall_s = stall_s
        self._open = open_capture
        self._log = log
        started = time.monotonic()
        self._cap = open_capture()
        if not self._cap.isOpened():
            raise SourceError(self.why_not_opened(time.monotonic() - started))
        self._cond = threading.Condition()
        self._latest: Optional[Any] = None
        self._sequence = 0
        self._t0 = self._last_frame_at = time.monotonic()
        self._lost_at: Optional[float] = None  # set while an outage lasts
        self._delay = options.reconnect_s  # the next wait before reopening, within an outage
        self._gap_s = 0.0  # outage time not yet handed to the consumer with a frame
        self._error: Optional[str] = None
        self._stop = False
        self._thread = threading.Thread(target=self._read_forever, name=f"{self.kind} {uri}", daemon=True)
        self._thread.start()

    def why_not_opened(self, elapsed_s: float) -> str:
        """The one-line reason the first open failed (a stream says more, see StreamSource)."""
        return (f"cannot open camera {self.uri}: the device did not start; check it is connected and "
                "not used by another program, or pass --input demo")

    def _read_forever(self) -> None:
        try:
            while not self._stop:
                ok, image = self._cap.read()
                if ok and image is not None:
                    self._deliver(image)
                elif self._stop or not self._reopen():
                    return
        except Exception as exc:  # a backend that throws (cv2.error) ends the run with its message, not a hang
            self._fail(f"{self.kind} {self.uri} failed: {' '.join(str(exc).split())}")
        finally:
            self._cap.release()  # only this thread touches the capture, so close() cannot race a read

    def _fail(self, message: str) -> None:
        """The reader stops for good: the consumer raises `message` once it has the frames before it."""
        with self._cond:
            self._error = message
            self._cond.notify_all()

    def _deliver(self, image: Any) -> None:
        now = time.monotonic()
        with self._cond:
            if self._lost_at is not None:
                gap = now - self._last_frame_at
                self._gap_s += gap
                self._lost_at = None
                self._log(f"input {self.uri} is back after {gap:.1f} s")
            self._latest, self._sequence, self._last_frame_at = image, self._sequence + 1, now
            self._cond.notify_all()

    def _reopen(self) -> bool:
        """Reopen with backoff until it opens (True), `give_up_s` passes or close() is called (False).
        An outage spans reopens that open but deliver nothing, so it is logged once."""
        opts = self.options
        with self._cond:
            if self._lost_at is None:
                self._lost_at, self._delay = time.monotonic(), opts.reconnect_s
                limit = f" for up to {opts.give_up_s:g} s" if opts.give_up_s else ""
                self._log(f"input {self.uri} lost; reopening it every {opts.reconnect_s:g} to "
                          f"{opts.reconnect_max_s:g} s{limit}")
            lost_at = self._lost_at
        while True:
            self._cap.release()
            if opts.give_up_s and time.monotonic() - lost_at >= opts.give_up_s:
                self._fail(f"{self.kind} {self.uri} stopped delivering frames and did not come back within "
                           f"{opts.give_up_s:g} s; check its connection, then run again")
                return False
            with self._cond:
                if self._cond.wait_for(lambda: self._stop, timeout=self._delay):
                    return False
            self._delay = min(2 * self._delay, opts.reconnect_max_s)
            self._cap = self._open()
            if self._cap.isOpened():
                return True

    def __iter__(self) -> Iterator[Frame]:
        seen, index = 0, 0
        while True:
            newest = self._wait_for_frame(seen)
            if newest is None:
                return
            image, seen, captured_at, gap_s = newest
            yield Frame(image, index, 1000.0 * (captured_at - self._t0), gap_s)
            index += 1

    def _wait_for_frame(self, seen: int) -> Optional[Tuple[Any, int, float, float]]:
        """The newest frame after number `seen` with its capture time and the outage before it, or None
        once closed. Waits through outages; raises when the source gave up or a read hangs."""
        with self._cond:
            while self._sequence == seen and self._error is None and not self._stop:
                quiet_s = time.monotonic() - self._last_frame_at
                if self._lost_at is None and quiet_s >= self.stall_s:
                    raise SourceError(f"{self.kind} {self.uri} delivered no frame for {self.stall_s:g} s and "
                                      "does not answer; check the device or stream, then run again")
                self._cond.wait(timeout=self.stall_s if self._lost_at is not None else self.stall_s - quiet_s)
            if self._stop:
                return None
            if self._sequence == seen:
                raise SourceError(str(self._error))  # no newer frame, not stopped: the reader gave up
            gap_s, self._gap_s = self._gap_s, 0.0
            return self._latest, self._sequence, self._last_frame_at, gap_s

    def close(self) -> None:
        """Stop the reader; it releases the capture as it ends (at once, or when a blocked read returns)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=2.0)


class StreamSource(LiveSource):
    """An RTSP or HTTP stream through OpenCV's FFmpeg, with open and read timeouts (LiveOptions)."""

    kind = "stream"

    def __init__(self, url: str, options: LiveOptions = LiveOptions(), log: Log = lambda line: None) -> None:
        self._address = urlsplit(url)
        params = _timeouts(options.open_timeout_s, options.read_timeout_s)
        super().__init__(without_password(url), _video_capture(url, "CAP_FFMPEG", params), options, log)

    def why_not_opened(self, elapsed_s: float) -> str:
        """Nothing listening, a silent server, or one that answered without a playable stream."""
        where = f"cannot open stream {self.uri}"
        try:
            host, port = self._address.hostname, self._address.port or DEFAULT_PORTS[self._address.scheme]
        except ValueError:  # a port that is not a number
            host = None
        if not host:
            return f"{where}: the URL names no host or a bad port; expected e.g. rtsp://camera-ip:554/stream"
        try:
            socket.create_connection((host, port), timeout=2.0).close()
        except OSError as exc:
            return (f"{where}: cannot connect to {host}:{port} ({exc.strerror or exc}); "
                    "check the address and that the server is running")
        if elapsed_s >= 0.9 * self.options.open_timeout_s:
            return (f"{where}: {host}:{port} accepts connections but sent no stream within "
                    f"{self.options.open_timeout_s:g} s; check it is an RTSP/HTTP video server and the port")
        return (f"{where}: the server answered but gave no playable video; check the stream path, "
                "user and password, and that the codec is one FFmpeg decodes")


def _timeouts(open_s: float, read_s: float) -> List[int]:
    """VideoCapture params for FFmpeg's open and read timeouts; none on an OpenCV without them (< 4.6)."""
    import cv2

    if not hasattr(cv2, "CAP_PROP_READ_TIMEOUT_MSEC"):
        return []
    return [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(1000 * open_s), cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(1000 * read_s)]


def _video_capture(target: Any, api_name: str, params: Optional[List[int]] = None) -> Callable[[], Any]:
    import cv2

    api = getattr(cv2, api_name)
    if params:
        return lambda: cv2.VideoCapture(target, api, params)
    return lambda: cv2.VideoCapture(target, api)


def open_v4l2(uri: str, options: LiveOptions = LiveOptions(), log: Log = lambda line: None) -> LiveSource:
    """`0`, `/dev/video0` or `v4l2:///dev/video0`."""
    device = uri[len("v4l2://"):] if uri.startswith("v4l2://") else uri
    if device.isdigit():
        device = f"/dev/video{device}" if sys.platform.startswith("linux") else device
    if device.startswith("/dev/") and not os.path.exists(device):
        raise SourceError(f"camera {device} not found; list cameras with `v4l2-ctl --list-devices` "
                          "or use --input demo")
    target: Any = int(device) if device.isdigit() else device
    api = "CAP_V4L2" if sys.platform.startswith("linux") else "CAP_ANY"
    return LiveSource(uri, _video_capture(target, api), options, log)


def has_gstreamer() -> bool:
    import cv2

    found = re.search(r"GStreamer:\s*(\w+)", cv2.getBuildInformation())
    return bool(found) and found.group(1).upper() == "YES"  # type: ignore[union-attr]


def open_csi(uri: str, options: LiveOptions = LiveOptions(), log: Log = lambda line: None, width: int = 1280,
             height: int = 720, fps: int = 30) -> LiveSource:
    """`csi://0`: the Jetson camera through nvarguscamerasrc; needs an OpenCV built with GStreamer."""
    sensor = uri[len("csi://"):] or "0"
    if not sensor.isdigit():
        raise SourceError(f"bad CSI camera {uri!r}: expected csi://N with N the sensor id, e.g. csi://0")
    if not has_gstreamer():
        raise SourceError("csi:// needs OpenCV with GStreamer, which pip's opencv-python lacks; on a Jetson use "
                          "the system OpenCV (apt install python3-opencv, or JetPack's) in a venv made with "
                          "--system-site-packages")
    pipeline = CSI_PIPELINE.format(sensor=sensor, width=width, height=height, fps=fps)
    return LiveSource(uri, _video_capture(pipeline, "CAP_GSTREAMER"), options, log)


def first_camera_or_none(options: LiveOptions = LiveOptions(), log: Log = lambda line: None) -> Optional[Source]:
    """Camera 0 when it exists and opens (what `run_camera.py` with no input wants), else None."""
    try:
        return open_v4l2("0", options, log)
    except SourceError:
        return None
