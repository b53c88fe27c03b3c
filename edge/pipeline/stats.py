"""Per-stage timers for the loop: per-frame milliseconds, p50/p90/p99, windowed FPS.

Stages are fixed (jetson-inference style) so every run, JSON line and benchmark reads the same:
capture (decode or camera wait), detect, align_pre (warp + normalise), align_net (network and
post-processing), track (the state machine itself), render, output (video, window, JSON), and
total (the frame from capture to output done, capture included).
"""
from __future__ import annotations

import time
from collections import deque
from contextlib import contextmanager
from typing import Any, Deque, Dict, Iterator, List

import numpy as np

STAGES = ("capture", "detect", "align_pre", "align_net", "track", "render", "output", "total")
PERCENTILES = (50, 90, 99)


class FrameTimer:
    """Collects one frame's stage times; a stage entered twice in a frame (re-detection) adds up."""

    def __init__(self) -> None:
        self.ms: Dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, 1000.0 * (time.perf_counter() - start))

    def add(self, name: str, ms: float) -> None:
        if name not in STAGES:
            raise ValueError(f"unknown stage {name!r}; stages are {', '.join(STAGES)}")
        self.ms[name] = self.ms.get(name, 0.0) + ms

    def get(self, *names: str) -> float:
        return sum(self.ms.get(n, 0.0) for n in names)

    def take(self) -> Dict[str, float]:
        """This frame's times; the timer starts the next frame empty."""
        ms, self.ms = self.ms, {}
        return ms


class RunStats:
    """Everything the final summary and the benchmark report, accumulated frame by frame."""

    def __init__(self, fps_window: int = 30) -> None:
        self.frames = 0
        self.frames_with_face = 0
        self.faces = 0
        self.detector_frames = 0
        self.skipped = 0  # frames the source could not decode (set by the caller)
        self.stage_ms: Dict[str, List[float]] = {name: [] for name in STAGES}
        self._ends: Deque[float] = deque(maxlen=fps_window)
        self._first_end = 0.0

    def add(self, frame_ms: Dict[str, float], faces: int) -> None:
        now = time.perf_counter()
        if not self.frames:
            self._first_end = now
        self._ends.append(now)
        self.frames += 1
        self.faces += faces
        self.frames_with_face += faces > 0
        self.detector_frames += "detect" in frame_ms
        for name, ms in frame_ms.items():
            self.stage_ms[name].append(ms)

    @property
    def fps(self) -> float:
        """Frames per second over the last `fps_window` frames (what the overlay shows)."""
        if len(self._ends) < 2:
            return 0.0
        return (len(self._ends) - 1) / max(self._ends[-1] - self._ends[0], 1e-9)

    def summary(self) -> Dict[str, Any]:
        """Plain numbers (JSON-ready): counts, FPS from the total stage, percentiles per stage."""
        total = self.stage_ms["total"]
        out: Dict[str, Any] = {
            "frames": self.frames, "faces": self.faces, "frames_with_face": self.frames_with_face,
            "detector_fraction": self.detector_frames / self.frames if self.frames else 0.0,
            "skipped_frames": self.skipped,
            "fps": 1000.0 * len(total) / sum(total) if total and sum(total) > 0 else 0.0,
        }
        out["stages_ms"] = {name: percentiles(ms) for name, ms in self.stage_ms.items() if ms}
        return out

    def format_summary(self) -> str:
        s = self.summary()
        lines = [f"frames {s['frames']}  with a face {s['frames_with_face']}  faces {s['faces']}  "
                 f"FPS {s['fps']:.1f}  detector ran on {100 * s['detector_fraction']:.1f} % of frames"
                 + (f"  undecodable frames skipped {self.skipped}" if self.skipped else ""),
                 f"{'stage':<10} {'runs':>6} " + " ".join(f"{'p%d ms' % p:>8}" for p in PERCENTILES)]
        for name, row in s["stages_ms"].items():
            lines.append(f"{name:<10} {row['n']:>6} " + " ".join(f"{row['p%d' % p]:>8.2f}" for p in PERCENTILES))
        return "\n".join(lines)


def percentiles(ms: List[float]) -> Dict[str, float]:
    values = np.percentile(np.asarray(ms, dtype=np.float64), PERCENTILES)
    row = {f"p{p}": float(v) for p, v in zip(PERCENTILES, values)}
    row["n"] = len(ms)
    return row
