"""A live window (display://0); `--display auto` opens one only where a screen exists."""
from __future__ import annotations

import os
from typing import Optional, Tuple

import numpy as np

from edge.errors import ConfigError
from edge.io.sinks import FrameResult, SinkOptions

WINDOW = "ATPN Edge (q or Esc to quit)"


class DisplaySink:
    """A live window; `write` returns False once the user pressed q or Esc. Needs a screen (see `has_display`)."""

    wants_picture = True

    def __init__(self, target: str = "display://0", options: SinkOptions = SinkOptions()) -> None:
        if not has_display():
            raise ConfigError(f"{options.flag} {target} needs a screen: $DISPLAY is not set or OpenCV has no GUI; "
                              "use --display off (and --save out.mp4) on a headless machine")
        self.uri = target

    def write(self, result: FrameResult, picture: Optional[np.ndarray]) -> bool:
        import cv2

        cv2.imshow(WINDOW, picture)
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


def display_targets(mode: str) -> Tuple[str, ...]:
    """--display auto|on|off as sink targets: `auto` adds a window only where a screen exists; `on` always
    does (and fails in one line without a screen)."""
    return ("display://0",) if mode == "on" or (mode == "auto" and has_display()) else ()
