"""Per-stage timers for the loop: per-frame milliseconds, p50/p90/p99, windowed FPS.

Stages are fixed (jetson-inference style) so every run, JSON line and benchmark reads the same:
capture (decode or camera wait), detect, align_pre (warp + normalise), align_net (network and
post-processing), track (the state machine itself), render, output (video, window, JSON), and
total (the frame from capture to output done, capture included).

The loop runs for weeks on a Jetson, so nothing here grows with the number of frames: each stage's
times go into a fixed set of log-spaced buckets (`LatencyHistogram`), whose percentiles are within
0.5 % of the exact ones.
"""
from __future__ import annotations

import math
import time
from array import array
from collections import deque
from contextlib import contextmanager
from typing import Any, Deque, Dict, Iterable, Iterator

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


class LatencyHistogram:
    """Streaming percentiles of millisecond times in fixed memory (HdrHistogram's idea, log buckets).

    Bucket i holds [LOW * GROWTH**i, LOW * GROWTH**(i+1)); a percentile is its bucket's geometric middle
    (clamped to the exact min and max), so it is within half a bucket, 0.5 %, of numpy's. Times below
    1 us or above 1000 s land in the end buckets. Count, sum, min and max (p0, p100) are exact.
    """

    LOW_MS = 1e-3
    HIGH_MS = 1e6
    GROWTH = 1.01
    LOG_GROWTH = math.log(GROWTH)
    BUCKETS = math.ceil(math.log(HIGH_MS / LOW_MS) / LOG_GROWTH)

    def __init__(self) -> None:
        self.counts = array("q", bytes(8 * self.BUCKETS))  # 16.7 kB, whatever the run's length
        self.n = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf

    @classmethod
    def of(cls, values: Iterable[float]) -> "LatencyHistogram":
        hist = cls()
        for value in values:
            hist.add(value)
        return hist

    def add(self, ms: float) -> None:
        index = int(math.log(ms / self.LOW_MS) / self.LOG_GROWTH) if ms > self.LOW_MS else 0
        self.counts[index if index < self.BUCKETS else self.BUCKETS - 1] += 1
        self.n += 1
        self.total += ms
        if ms < self.min:
            self.min = ms
        if ms > self.max:
            self.max = ms

    def percentiles(self, ps: Iterable[float] = PERCENTILES) -> Dict[str, float]:
        """{"p50": ..., ...} interpolated between order statistics as numpy.percentile does; empty when n = 0."""
        if not self.n:
            return {}
        cumulative = np.cumsum(np.frombuffer(self.counts, dtype=np.int64))
        row = {}
        for p in ps:
            rank = p / 100.0 * (self.n - 1)
            below = math.floor(rank)
            low, high = self._order_statistic(cumulative, below), self._order_statistic(cumulative, below + 1)
            row[f"p{p:g}"] = low + (high - low) * (rank - below)
        return row

    def row(self) -> Dict[str, float]:
        """The summary's line for this stage: p50/p90/p99 and the count."""
        row = self.percentiles()
        row["n"] = self.n
        return row

    def _order_statistic(self, cumulative: np.ndarray, k: int) -> float:
        """The k-th smallest time (0-based): exact at either end, else its bucket's middle."""
        if k <= 0 or k >= self.n - 1:
            return self.min if k <= 0 else self.max
        bucket = int(np.searchsorted(cumulative, k, side="right"))
        middle = self.LOW_MS * self.GROWTH ** (bucket + 0.5)
        return min(max(middle, self.min), self.max)


class RunStats:
    """Everything the final summary and the benchmark report, accumulated frame by frame in fixed memory."""

    def __init__(self, fps_window: int = 30) -> None:
        self.frames = 0
        self.frames_with_face = 0
        self.faces = 0
        self.detector_frames = 0
        self.skipped = 0  # frames the source could not decode (set by the caller)
        self.stage_ms: Dict[str, LatencyHistogram] = {name: LatencyHistogram() for name in STAGES}
        self._ends: Deque[float] = deque(maxlen=fps_window)
        self._first_start = 0.0

    def add(self, frame_ms: Dict[str, float], faces: int) -> None:
        """One finished frame; called once its outputs are written, so its `total` ends now."""
        now = time.perf_counter()
        if not self.frames:
            self._first_start = now - frame_ms.get("total", 0.0) / 1000.0
        self._ends.append(now)
        self.frames += 1
        self.faces += faces
        self.frames_with_face += faces > 0
        self.detector_frames += "detect" in frame_ms
        for name, ms in frame_ms.items():
            self.stage_ms[name].add(ms)

    @property
    def fps(self) -> float:
        """Frames per second over the last `fps_window` frames (what the overlay shows)."""
        if len(self._ends) < 2:
            return 0.0
        return (len(self._ends) - 1) / max(self._ends[-1] - self._ends[0], 1e-9)

    @property
    def wall_fps(self) -> float:
        """Frames over the wall time from the first frame's capture to the last frame's end."""
        if not self.frames:
            return 0.0
        return self.frames / max(self._ends[-1] - self._first_start, 1e-9)

    def summary(self) -> Dict[str, Any]:
        """Plain numbers (JSON-ready): counts, wall-clock FPS, percentiles per stage."""
        return {"frames": self.frames, "faces": self.faces, "frames_with_face": self.frames_with_face,
                "detector_fraction": self.detector_frames / self.frames if self.frames else 0.0,
                "skipped_frames": self.skipped, "fps": self.wall_fps,
                "stages_ms": {name: hist.row() for name, hist in self.stage_ms.items() if hist.n}}

    def format_summary(self) -> str:
        s = self.summary()
        lines = [f"frames {s['frames']}  with a face {s['frames_with_face']}  faces {s['faces']}  "
                 f"FPS {s['fps']:.1f}  detector ran on {100 * s['detector_fraction']:.1f} % of frames"
                 + (f"  undecodable frames skipped {self.skipped}" if self.skipped else ""),
                 f"{'stage':<10} {'runs':>6} " + " ".join(f"{'p%d ms' % p:>8}" for p in PERCENTILES)]
        for name, row in s["stages_ms"].items():
            lines.append(f"{name:<10} {row['n']:>6} " + " ".join(f"{row['p%d' % p]:>8.2f}" for p in PERCENTILES))
        return "\n".join(lines)
