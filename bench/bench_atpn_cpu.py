#!/usr/bin/env python
"""ATPN latency per crop with ONNX Runtime on the CPU, batch 1 and batch 8.

Each configuration: warm-up, then `--runs` timed runs of `--iters` inferences each; the figure is the
median over runs of the per-run median latency, divided by the batch size. Results go to stdout and
`--out` (JSON). Usage: python bench/bench_atpn_cpu.py [--model models/atpn68.onnx] [--threads 1 2]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from edge.errors import EdgeError  # noqa: E402
from edge.model.spec import INPUT_NAME  # noqa: E402
from edge.pipeline.aligner import spec_of  # noqa: E402
from edge.runtime import open_engine  # noqa: E402


def time_config(model: str, threads: int, batch: int, runs: int, iters: int) -> Dict[str, float]:
    with open_engine(model, threads=threads) as engine:
        spec = spec_of(engine)
        crops = np.random.default_rng(0).normal(0, 1, spec.input_shape(batch)).astype(np.float32)
        for _ in range(20):
            engine.infer({INPUT_NAME: crops})
        run_medians: List[float] = []
        for _ in range(runs):
            lat = []
            for _ in range(iters):
                t = time.perf_counter()
                engine.infer({INPUT_NAME: crops})
                lat.append(time.perf_counter() - t)
            run_medians.append(statistics.median(lat) * 1000)
    per_batch = statistics.median(run_medians)
    return {"threads": threads, "batch": batch, "ms_per_batch": per_batch, "ms_per_crop": per_batch / batch,
            "crops_per_s": 1000 * batch / per_batch, "run_medians_ms": run_medians}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/atpn68.onnx")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="ORT intra-op threads to try")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--out", default="out/bench_atpn_cpu.json")
    args = ap.parse_args()
    results = []
    try:
        for threads in args.threads:
            for batch in args.batches:
                r = time_config(args.model, threads, batch, args.runs, args.iters)
                results.append(r)
                print(f"threads {threads}  batch {batch}: {r['ms_per_crop']:.3f} ms/crop "
                      f"({r['ms_per_batch']:.3f} ms/batch, {r['crops_per_s']:.0f} crops/s)", flush=True)
    except EdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import onnxruntime

    report = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "model": args.model, "cpu_count": os.cpu_count(),
              "machine": platform.machine(), "processor": platform.processor(), "onnxruntime": onnxruntime.__version__,
              "loadavg_end": os.getloadavg(), "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    best = {b: min(r["ms_per_crop"] for r in results if r["batch"] == b) for b in args.batches}
    print("best ms/crop: " + ", ".join(f"batch {b}: {v:.3f}" for b, v in best.items()) + f"  -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
