"""Inputs by URI, like jetson-inference's videoSource: one factory from a string to an opened Source."""
from __future__ import annotations

import os
from typing import Callable

from edge.errors import SourceError
from edge.io.sources import IMAGE_SUFFIXES, FolderSource, LiveOptions, Source, VideoFileSource

USAGE = """input URIs:
  0, 1, ... | v4l2:///dev/video0     USB/V4L2 camera (read live, newest frame only; reopened if it drops)
  csi://0                            Jetson CSI camera through GStreamer nvarguscamerasrc (same)
  rtsp://[user:pass@]host/stream     network stream (same; the password is never printed)
  file://clip.mp4 | clip.mp4         video file, every frame in order
  path/to/folder | photo.jpg         folder of images in sorted name order, or one image: photos, each
                                     detected and refined on its own (--stills off: frames of one scene)
  demo                               built-in moving sequence made from the astronaut photo
  auto                               camera 0 if it opens, else demo"""


def names_photos(uri: str) -> bool:
    """A folder (of images) or an image file: pictures, run as stills by default (config `stills`)."""
    path = uri[len("file://"):] if uri.startswith("file://") else uri
    return os.path.isdir(path) or (os.path.isfile(path) and path.lower().endswith(IMAGE_SUFFIXES))


def open_source(uri: str, live: LiveOptions = LiveOptions(),
                log: Callable[[str], None] = lambda line: None) -> Source:
    """The one factory: a URI (see USAGE) -> an opened Source, or a one-line SourceError. Live
    sources follow `live` and `log` one line when they drop and one when they are back."""
    from edge.io import camera

    text = uri.strip()
    if text == "auto":
        return camera.first_camera_or_none(live, log) or open_source("demo")
    if text == "demo":
        from edge.io.demo import DemoSource

        return DemoSource()
    if text.isdigit() or text.startswith("v4l2://") or text.startswith("/dev/video"):
        return camera.open_v4l2(text, live, log)
    if text.startswith("csi://"):
        return camera.open_csi(text, live, log)
    if text.startswith(("rtsp://", "rtsps://", "http://", "https://")):
        return camera.StreamSource(text, live, log)
    path = text[len("file://"):] if text.startswith("file://") else text
    if names_photos(path):
        return FolderSource(path)
    if "://" in text and not text.startswith("file://"):
        raise SourceError(f"unknown input URI scheme in {uri!r}; valid: 0, v4l2:///dev/videoN, csi://N, "
                          "rtsp://..., file://path, a folder, demo, auto")
    return VideoFileSource(path)
