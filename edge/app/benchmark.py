"""Timing the loop the way trtexec times an engine: frames decoded first, then several timed runs.

Decoding stops at a memory budget (a long video would exhaust RAM). Reports end-to-end FPS after
decode, per-stage p50/p90/p99, GPU compute per engine (CUDA events, TensorRT backend), frames with
a face, the detector's share of frames, peak RSS and, on Jetson, the power mode. Used by
`run_camera.py --benchmark` and `bench/bench_loop_cpu.py`.
"""
from __future__ import annotations

import resource
import shutil
import subprocess
import time
from contextlib import ExitStack
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from edge.config import Config
from edge.errors import ConfigError
from edge.app.run import open_pipeline
from edge.pipeline.loop import no_frames_error, run_loop
from edge.io.sinks import Sinks
from edge.io.sources import MemorySource
from edge.io.uri import open_source
from edge.pipeline.stats import RunStats

DECODE_BUDGET_MB = 1024  # at most this much decoded video (640x360: 0.7 MB a frame, 1080p: 6.2 MB) ...
DECODE_SHARE_OF_FREE = 0.25  # ... and at most this share of the memory free when decoding starts
LIVE_FRAMES = 300  # a live camera never ends: this many frames unless --max-frames says otherwise


def decode_frames(uri: str, max_frames: int = 0, budget_mb: Optional[float] = None,
                  log: Callable[[str], None] = lambda line: None) -> List[np.ndarray]:
    """The input's frames in memory, up to `max_frames` (a live camera: LIVE_FRAMES) and a memory budget
    (default: DECODE_BUDGET_MB or a quarter of free memory, the smaller), so a long video cannot exhaust
    RAM; stopping at the budget is said in one line. An input without a frame raises SourceError."""
    budget_mb = decode_budget_mb() if budget_mb is None else budget_mb
    with open_source(uri) as source:
        limit = max_frames or (LIVE_FRAMES if source.live else 0)
        images: List[np.ndarray] = []
        used = 0
        for frame in source:
            if images and used + frame.image.nbytes > budget_mb * 2 ** 20:
                of = f" of {source.length}" if source.length else ""
                log(f"benchmark: decoding stopped at the {budget_mb:.0f} MB memory budget: timing the first "
                    f"{len(images)}{of} frames")
                break
            images.append(frame.image)
            used += frame.image.nbytes
            if limit and len(images) >= limit:
                break
        if not images:
            raise no_frames_error(source)
    return images


def decode_budget_mb() -> float:
    """DECODE_BUDGET_MB, less where free memory (MemAvailable) is short, as on a 4 GB Jetson."""
    try:
        with open("/proc/meminfo") as f:
            free_kb = next(int(line.split()[1]) for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return DECODE_BUDGET_MB
    return min(DECODE_BUDGET_MB, DECODE_SHARE_OF_FREE * free_kb / 1024.0)


def benchmark(images: List[np.ndarray], config: Config, runs: int,
              log: Callable[[str], None] = lambda line: None, stills: bool = False) -> Dict[str, Any]:
    """`runs` (>= 1) passes over `images` with a fresh tracker each; the median run (by FPS) is reported.
    `stills`: the images are photos, timed as a run on them goes (stills model and passes, no tracking)."""
    if runs < 1:
        raise ConfigError(f"benchmark runs must be at least 1, got {runs}")
    results = []
    with ExitStack() as stack:
        pipeline = open_pipeline(config, stack, log, stills=stills)
        gpu = getattr(pipeline, "gpu", None)
        for k in range(runs):
            pipeline.tracker.reset()
            if gpu is not None:
                gpu.ms.clear()
            stats = RunStats()
            start = time.perf_counter()
            run_loop(MemorySource(images), pipeline, Sinks(), stats, stills=config.stills if stills else None)
            summary = stats.summary()
            summary["wall_fps"] = len(images) / (time.perf_counter() - start)
            if gpu is not None:
                summary["gpu_ms"] = {name: hist.row() for name, hist in gpu.ms.items()}
            results.append(summary)
            log(f"  run {k + 1}: {summary['wall_fps']:.1f} FPS, face on {summary['frames_with_face']}/{len(images)}, "
                f"detector on {100 * float(summary['detector_fraction']):.1f} %")
    median = sorted(results, key=lambda r: r["wall_fps"])[len(results) // 2]
    return {"frames": len(images), "mode": "stills" if stills else "sequence", "backend": config.runtime.backend,
            "threads": config.runtime.threads,
            "fps_runs": [r["wall_fps"] for r in results], "median_run": median,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, "power_mode": power_mode()}


def power_mode() -> Optional[str]:
    """Jetson's `nvpmodel -q` (e.g. 'NV Power Mode: MAXN'), or None elsewhere."""
    if shutil.which("nvpmodel") is None:
        return None
    try:
        out = subprocess.run(["nvpmodel", "-q"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             universal_newlines=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    return lines[0] if lines else None


def format_report(report: Dict[str, Any]) -> str:
    run = report["median_run"]
    lines = [f"median of {len(report['fps_runs'])} runs ({report['backend']}, {report['mode']}): "
             f"{run['wall_fps']:.1f} FPS end-to-end after decode, face on {run['frames_with_face']}/{run['frames']} "
             f"frames, detector on {100 * run['detector_fraction']:.1f} %, peak RSS {report['peak_rss_mb']:.0f} MB"]
    for name, row in run["stages_ms"].items():
        lines.append(f"  {name:<10} p50 {row['p50']:7.2f}  p90 {row['p90']:7.2f}  p99 {row['p99']:7.2f} ms")
    for name, row in run.get("gpu_ms", {}).items():
        lines.append(f"  GPU {name:<6} p50 {row['p50']:7.3f}  p90 {row['p90']:7.3f}  p99 {row['p99']:7.3f} ms "
                     "(CUDA events, compute only)")
    if report.get("power_mode"):
        lines.append(f"  power mode: {report['power_mode']}")
    return "\n".join(lines)
