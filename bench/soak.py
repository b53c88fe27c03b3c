#!/usr/bin/env python
"""Soak the camera loop: N minutes on a looped clip, watching memory, speed and file descriptors.

The loop (detector + ATPN + tracker, a JSON line per frame written to /dev/null) runs in this
process on the Hamilton clip, decoded again from the start whenever it ends (a new decoder each
pass, as a reconnecting camera makes). Every `--every` seconds a sampler thread reads /proc/self:
RSS, open file descriptors, threads, and the frames done since the last sample (FPS). Each sample
is a JSON line on stdout (and in `--out`). At the end, least-squares slopes over the samples after
the warm-up: RSS in MB/hour, FPS and CPU ms/frame drift in %/hour of the mean, file descriptors
per hour; and a verdict against issue 16's targets. A benchmark, not a test: the machine's other
load (sampled too) moves FPS.
`--fps 30` paces the loop like a camera; by default it runs flat out (the most frames per hour,
so a per-frame leak shows soonest).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, TextIO, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from edge.config import load_config  # noqa: E402
from edge.errors import EdgeError  # noqa: E402
from edge.app.run import open_pipeline  # noqa: E402
from edge.pipeline.loop import run_loop  # noqa: E402
from edge.io.sinks import Sinks  # noqa: E402
from edge.io.sinks.jsonl import JsonLinesSink  # noqa: E402
from edge.io.sources import Source, VideoFileSource  # noqa: E402
from edge.pipeline.stats import RunStats  # noqa: E402
from edge.types import Frame  # noqa: E402

CLIP = ROOT.parent / "shared" / "data" / "clips" / "hamilton_640x360.mp4"
# RSS: issue 16's target; its "flat FPS" taken as no slow-down beyond 5 %/hour
LIMITS = {"rss_mb_per_hour": 5.0, "fds_per_hour": 1.0, "drift_pct_per_hour": 5.0}
COLUMNS = ("t_s", "rss_mb", "fds", "threads", "frames", "fps", "cpu_ms_per_frame", "load1")


class LoopedClip(Source):
    """A video file read again and again until `deadline` (time.monotonic()); frame indices keep counting."""

    def __init__(self, path: str, deadline: float, fps: float = 0.0) -> None:
        self.uri = path
        self.deadline = deadline
        self.pace_s = 1.0 / fps if fps > 0 else 0.0
        self.passes = 0

    def __iter__(self) -> Iterator[Frame]:
        index, next_at = 0, time.monotonic()
        while time.monotonic() < self.deadline:
            with VideoFileSource(self.uri) as clip:
                for frame in clip:
                    if self.pace_s:  # a camera's next frame: never sooner, and none queued when the loop lags
                        now = time.monotonic()
                        next_at = max(next_at + self.pace_s, now)
                        time.sleep(next_at - now)
                    if time.monotonic() >= self.deadline:
                        return
                    yield Frame(frame.image, index, frame.t_ms)
                    index += 1
                self.skipped += clip.skipped
            self.passes += 1


class Sampler(threading.Thread):
    """Reads /proc/self every `every` s into a table sized for the whole run (the soak must not grow either)."""

    def __init__(self, stats: RunStats, every: float, rows: int, out: Optional[TextIO]) -> None:
        super().__init__(name="soak sampler", daemon=True)
        self.stats, self.every, self.out = stats, every, out
        self.table = np.full((rows, len(COLUMNS)), np.nan)
        self.count = 0
        self.stopped = threading.Event()
        self._t0 = time.monotonic()
        self._last = (self._t0, 0, _cpu_s())

    def run(self) -> None:
        while not self.stopped.wait(self.every) and self.count < len(self.table):
            self.sample()

    def sample(self) -> None:
        now, frames, cpu = time.monotonic(), self.stats.frames, _cpu_s()
        last_at, last_frames, last_cpu = self._last
        self._last = (now, frames, cpu)
        status = _proc_status()
        done = frames - last_frames
        row = (now - self._t0, status["VmRSS"] / 1024.0, len(os.listdir("/proc/self/fd")), status["Threads"],
               frames, done / max(now - last_at, 1e-9), 1000.0 * (cpu - last_cpu) / max(done, 1), os.getloadavg()[0])
        self.table[self.count] = row
        self.count += 1
        line = json.dumps({name: round(float(value), 3) for name, value in zip(COLUMNS, row)})
        print(line, flush=True)
        if self.out is not None:
            self.out.write(line + "\n")
            self.out.flush()


def _cpu_s() -> float:
    """CPU seconds of this process, all threads (moved less than wall FPS by other processes)."""
    times = os.times()
    return times.user + times.system


def _proc_status() -> Dict[str, int]:
    """VmRSS (kB) and Threads of this process."""
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return {"VmRSS": int(fields["VmRSS"].split()[0]), "Threads": int(fields["Threads"])}


def fit(x: np.ndarray, y: np.ndarray) -> Tuple[float, float]:
    """Least-squares slope of y over x and its 95 % half-interval (1.96 standard errors)."""
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    se = np.sqrt(residual @ residual / max(len(x) - 2, 1) / max(float(((x - x.mean()) ** 2).sum()), 1e-12))
    return float(slope), float(1.96 * se)


def slopes(table: np.ndarray, warmup_s: float) -> Dict[str, Any]:
    """Per-hour slopes over the samples after the warm-up, and the verdict.

    RSS and file descriptors must not grow (point estimate under the limit). FPS and CPU ms per frame
    move with the machine's other load (`load1`), so only a slow-down the noise cannot explain fails:
    FPS falling, or CPU ms per frame rising, by more than the limit with 95 % confidence. A speed-up
    (the other load going away) passes."""
    rows = table[table[:, 0] >= warmup_s]
    if len(rows) < 3:
        raise EdgeError(f"only {len(rows)} samples after the {warmup_s:.0f} s warm-up; run longer or sample more often")
    hours = rows[:, 0] / 3600.0
    col = {name: rows[:, i] for i, name in enumerate(COLUMNS)}
    result: Dict[str, Any] = {"window_s": [float(rows[0, 0]), float(rows[-1, 0])], "samples": len(rows),
                              "rss_mb": [float(col["rss_mb"][0]), float(col["rss_mb"][-1])],
                              "fds": [int(col["fds"][0]), int(col["fds"][-1])],
                              "load1": [float(col["load1"][0]), float(col["load1"][-1])]}
    result["rss_mb_per_hour"], result["rss_mb_per_hour_ci95"] = fit(hours, col["rss_mb"])
    result["rss_bytes_per_frame"] = fit(col["frames"], col["rss_mb"])[0] * 2 ** 20
    result["fds_per_hour"] = fit(hours, col["fds"])[0]
    for name in ("fps", "cpu_ms_per_frame"):
        mean = float(col[name].mean())
        slope, ci = fit(hours, col[name])
        result[f"{name}_mean"] = mean
        result[f"{name}_cv_pct"] = 100.0 * float(col[name].std()) / max(mean, 1e-9)
        result[f"{name}_drift_pct_per_hour"] = 100.0 * slope / max(mean, 1e-9)
        result[f"{name}_drift_ci95"] = 100.0 * ci / max(mean, 1e-9)
    drift_limit = LIMITS["drift_pct_per_hour"]
    result["pass"] = {
        "rss": result["rss_mb_per_hour"] < LIMITS["rss_mb_per_hour"],
        "fds": result["fds_per_hour"] < LIMITS["fds_per_hour"],
        "fps": result["fps_drift_pct_per_hour"] + result["fps_drift_ci95"] > -drift_limit,
        "cpu_ms_per_frame": result["cpu_ms_per_frame_drift_pct_per_hour"] - result["cpu_ms_per_frame_drift_ci95"]
        < drift_limit}
    result["verdict"] = "PASS" if all(result["pass"].values()) else "FAIL"
    return result


def format_verdict(result: Dict[str, Any], frames: int, passes: int) -> str:
    drift = "; ".join(f"{label} {result[name + '_mean']:.2f} (CV {result[name + '_cv_pct']:.0f} %), drift "
                      f"{result[name + '_drift_pct_per_hour']:+.1f} +- {result[name + '_drift_ci95']:.1f} %/hour"
                      for label, name in (("FPS", "fps"), ("CPU ms/frame", "cpu_ms_per_frame")))
    return (f"soak {result['verdict']}: {frames} frames ({passes} passes of the clip); after the warm-up "
            f"({result['window_s'][0]:.0f}-{result['window_s'][1]:.0f} s, {result['samples']} samples): "
            f"RSS {result['rss_mb'][0]:.1f} -> {result['rss_mb'][1]:.1f} MB, {result['rss_mb_per_hour']:+.2f} "
            f"+- {result['rss_mb_per_hour_ci95']:.2f} MB/hour ({result['rss_bytes_per_frame']:+.2f} B/frame); "
            f"fds {result['fds'][0]} -> {result['fds'][1]}; {drift}; load average {result['load1'][0]:.1f} -> "
            f"{result['load1'][1]:.1f} (limits: RSS < {LIMITS['rss_mb_per_hour']:g} MB/hour, no slow-down beyond "
            f"{LIMITS['drift_pct_per_hour']:g} %/hour at 95 %)")


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0, help="how long the loop runs (default %(default)s)")
    ap.add_argument("--warmup", type=float, help="minutes left out of the slopes (default: a fifth of the run)")
    ap.add_argument("--every", type=float, default=5.0, help="seconds between samples (default %(default)s)")
    ap.add_argument("--clip", default=str(CLIP))
    ap.add_argument("--config", help="YAML config (default configs/cpu.yaml)")
    ap.add_argument("--threads", type=int, help="ONNX Runtime threads for ATPN (default: the config's)")
    ap.add_argument("--fps", type=float, default=0.0, help="pace the frames like a camera (0 = flat out)")
    ap.add_argument("--out", help="also write the JSON lines (samples, then the result) here")
    args = ap.parse_args(argv)
    if not Path(args.clip).is_file():
        print(f"skipped: {args.clip} is absent (development data in ../shared/data)", file=sys.stderr)
        return 0
    warmup_s = 60.0 * (args.minutes / 5 if args.warmup is None else args.warmup)
    stats = RunStats()
    with ExitStack() as stack:
        out = stack.enter_context(open(args.out, "w")) if args.out else None
        try:
            config = load_config(args.config).with_overrides({"runtime.threads": args.threads})
            pipeline = open_pipeline(config, stack, live_source=args.fps > 0)  # paced: as a camera runs
            source = LoopedClip(args.clip, time.monotonic() + 60.0 * args.minutes, args.fps)
            outputs = Sinks([JsonLinesSink(os.devnull)])
            stack.callback(outputs.close)
            sampler = Sampler(stats, args.every, int(60.0 * args.minutes / args.every) + 2, out)
            sampler.start()
            try:
                run_loop(source, pipeline, outputs, stats)
            except KeyboardInterrupt:
                print("interrupted: the slopes cover the samples so far", file=sys.stderr)
            sampler.stopped.set()
            sampler.join()
            result = slopes(sampler.table[:sampler.count], warmup_s)
        except EdgeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        result.update(frames=stats.frames, passes=source.passes, skipped=source.skipped, minutes=args.minutes,
                      warmup_s=warmup_s, fps_paced=args.fps, cpu_count=os.cpu_count(), loadavg_end=os.getloadavg(),
                      summary=stats.summary())
        line = json.dumps({"result": result})
        print(line)
        if out is not None:
            out.write(line + "\n")
    print(format_verdict(result, stats.frames, source.passes))
    return 0 if result["verdict"] == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
