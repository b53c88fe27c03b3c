"""`demo`: a moving sequence made from the astronaut photo, so the loop runs without a camera.

A virtual camera pans, zooms and rolls over the photo; the face leaves the frame (about frames
185-235) and comes back. Pure function of the frame index: every run gives the same pixels.
"""
from __future__ import annotations

from typing import Iterator, Optional, Sequence, Tuple

import cv2
import numpy as np

from edge.model.crop import CropBox, crop_matrix
from edge.io.sources import Source
from edge.types import Frame

# (frame, view centre x, y in photo px, zoom, roll deg); the face is at about (224, 113), 95 px wide
KEYFRAMES: Sequence[Tuple[int, float, float, float, float]] = (
    (0, 224, 140, 1.0, 0),
    (60, 224, 125, 1.6, 0),
    (100, 224, 125, 1.6, 25),
    (140, 224, 125, 1.4, -25),
    (170, 224, 130, 1.3, 0),
    (200, 570, 130, 1.3, 0),  # the face is out to the left
    (220, 570, 130, 1.3, 0),
    (250, 224, 130, 1.3, 0),
    (299, 300, 150, 1.0, 10),
)
GRAY = (114, 114, 114)


def _view(index: int) -> Tuple[float, float, float, float]:
    """Smoothstep between the keyframes around `index`."""
    index = min(max(index, KEYFRAMES[0][0]), KEYFRAMES[-1][0])
    for (t0, *a), (t1, *b) in zip(KEYFRAMES, KEYFRAMES[1:]):
        if t0 <= index <= t1:
            u = (index - t0) / (t1 - t0)
            w = u * u * (3 - 2 * u)
            return tuple(float(x + (y - x) * w) for x, y in zip(a, b))  # type: ignore[return-value]
    raise AssertionError("unreachable: index clamped to the keyframes")


def render_demo_frame(photo_bgr: np.ndarray, index: int, size: Tuple[int, int] = (640, 360)) -> np.ndarray:
    """Frame `index` of the sequence: the photo seen through the virtual camera at that time."""
    width, height = size
    cx, cy, zoom, roll = _view(index)
    m = crop_matrix(CropBox(cx, cy, width / zoom, roll), width)  # a width x width window ...
    m[1, 2] -= (width - height) / 2.0  # ... cut to its middle `height` rows
    return cv2.warpAffine(photo_bgr, m, (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=GRAY)


class DemoSource(Source):
    """The built-in sequence, read like a file (every frame, in order)."""

    def __init__(self, photo_bgr: Optional[np.ndarray] = None, fps: float = 30.0,
                 size: Tuple[int, int] = (640, 360)) -> None:
        self.uri = "demo"
        self.photo = load_astronaut() if photo_bgr is None else photo_bgr
        self.length = KEYFRAMES[-1][0] + 1
        self.fps = fps
        self.size = size

    def __iter__(self) -> Iterator[Frame]:
        for index in range(self.length or 0):
            yield Frame(render_demo_frame(self.photo, index, self.size), index, 1000.0 * index / self.fps)


def load_astronaut() -> np.ndarray:
    """The photo, fetched into models/ on first use (see edge.assets)."""
    from edge.assets import fetch_astronaut
    from edge.errors import SourceError
    from edge.fileio import MODELS_DIR

    path = fetch_astronaut(MODELS_DIR)
    png = without_chunk(path.read_bytes(), b"iCCP")  # its colour profile makes libpng warn on every run
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise SourceError(f"cannot decode {path}; delete it and run `make models` to fetch it again")
    return image


def without_chunk(png: bytes, kind: bytes) -> bytes:
    """A PNG's bytes with every chunk of `kind` left out (chunks: 4-byte length, type, data, CRC)."""
    out, at = [png[:8]], 8
    while at + 8 <= len(png):
        end = at + 12 + int.from_bytes(png[at:at + 4], "big")
        if png[at + 4:at + 8] != kind:
            out.append(png[at:end])
        at = end
    return b"".join(out)
