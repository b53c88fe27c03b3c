"""The loop's statistics: streaming percentiles as numpy gives them, in memory that does not grow with frames."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from edge.pipeline.stats import STAGES, LatencyHistogram, RunStats


def frame_times(n: int, seed: int = 0) -> np.ndarray:
    """Heavy-tailed millisecond times like a loop's: mostly ~2 ms, a detector frame now and then, rare stalls."""
    rng = np.random.default_rng(seed)
    times = rng.lognormal(np.log(2.0), 0.3, n)
    detector = rng.random(n) < 0.1
    times[detector] += rng.lognormal(np.log(6.0), 0.4, int(detector.sum()))
    times[rng.random(n) < 0.005] *= 40
    return times


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 100_000])
def test_percentiles_are_numpys_within_half_a_percent(n):
    times = frame_times(n)
    hist = LatencyHistogram.of(times)
    ps = (0, 1, 50, 90, 99, 99.9, 100)
    expected = np.percentile(times, ps)
    got = hist.percentiles(ps)
    for p, value in zip(ps, expected):
        assert got[f"p{p:g}"] == pytest.approx(value, rel=5e-3), p
    assert hist.n == n and hist.total == pytest.approx(times.sum()) and (hist.min, hist.max) == (times.min(), times.max())


def test_times_outside_the_buckets_keep_their_exact_extremes():
    hist = LatencyHistogram.of([0.0, 1e-5, 3.0, 5e6])  # zero, under a microsecond, over 1000 s
    row = hist.percentiles((0, 100))
    assert row == {"p0": 0.0, "p100": 5e6}
    assert LatencyHistogram().percentiles() == {}


def test_run_stats_memory_does_not_grow_with_frames():
    """A week at 30 FPS is 18 M frames: per-frame lists grew ~210 bytes a frame (issue 16)."""
    times = frame_times(1000)
    frames = [{name: float(times[(i + k) % len(times)]) for k, name in enumerate(STAGES)} for i in range(len(times))]
    stats = RunStats()
    stats.add(frames[0], 1)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(40_000):
            stats.add(frames[i % len(frames)], 1)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 16_000, f"{grown} bytes for 40,000 frames"
    summary = stats.summary()
    assert summary["frames"] == 40_001 and set(summary["stages_ms"]) == set(STAGES)
    assert all(row["n"] == 40_001 for row in summary["stages_ms"].values())
