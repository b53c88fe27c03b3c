#!/usr/bin/env python
"""End-to-end camera-loop speed on the CPU, on the Hamilton clip, against MediaPipe Face Mesh.

All frames are decoded first; each of `--runs` runs then pushes them through detector + ATPN +
tracker (no drawing, no files) with a fresh tracker. Reported: the median run's FPS and its
per-stage p50/p90/p99, frames with a face, the detector's share of frames, peak RSS. The MediaPipe
peer (../shared/peers/bench_mediapipe.py) runs in the same go with its own venv's python when one
exists (/tmp/peer-venv, /work/teacher-venv); the ratio of the two FPS is the figure to quote, since
this machine is noisy. Results: stdout and `--out` (JSON).
Targets (2-core x86): >= 300 FPS, a face on >= 95 % of frames, peak RSS <= 600 MB.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any, Dict, List, Optional

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from edge.config import load_config  # noqa: E402
from edge.errors import EdgeError  # noqa: E402
from edge.app.benchmark import benchmark, decode_frames, format_report  # noqa: E402

CLIP = ROOT.parent / "shared" / "data" / "clips" / "hamilton_640x360.mp4"
PEER = ROOT.parent / "shared" / "peers" / "bench_mediapipe.py"
PEER_PYTHONS = ("/tmp/peer-venv/bin/python", "/work/teacher-venv/bin/python")
TARGETS = {"fps": 300.0, "face_fraction": 0.95, "peak_rss_mb": 600.0}


def time_ours(clip: Path, config_path: Optional[str], threads: Optional[int], runs: int) -> Dict[str, Any]:
    say = partial(print, flush=True)
    images = decode_frames(str(clip), log=say)
    config = load_config(config_path).with_overrides({"runtime.threads": threads})
    return benchmark(images, config, runs, log=say)


def time_peer(clip: Path, runs: int) -> Optional[Dict[str, Any]]:
    """MediaPipe Face Mesh through the peer script, or None (with a message) where it cannot run."""
    python = next((p for p in PEER_PYTHONS if _has_mediapipe(p)), None)
    if python is None or not PEER.is_file():
        print(f"  peer skipped: no python with mediapipe in {', '.join(PEER_PYTHONS)} (make one with "
              f"{PEER.parent / 'setup_peer_venv.sh'}) or {PEER} missing", flush=True)
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "peer.json"
        proc = subprocess.run([python, str(PEER), "--clip", str(clip), "--runs", str(runs), "--out", str(out)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
        if proc.returncode != 0 or not out.is_file():
            print(f"  peer failed (exit {proc.returncode}): {proc.stdout.strip().splitlines()[-1:]}", flush=True)
            return None
        report = json.loads(out.read_text())
    summary = report["summary"]["proc_only_median"]
    print(f"  MediaPipe Face Mesh: {summary['fps']:.1f} FPS, landmarks on {summary['frames_with_landmarks']:.0f}"
          f"/{report['n_frames']}", flush=True)
    return {"python": python, "frames": report["n_frames"], "proc_only_median": summary,
            "decode_included_median": report["summary"]["decode_included_median"]}


def _has_mediapipe(python: str) -> bool:
    if not os.access(python, os.X_OK):
        return False
    return subprocess.run([python, "-c", "import mediapipe"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def verdict(ours: Dict[str, Any]) -> Dict[str, bool]:
    run = ours["median_run"]
    return {"fps": run["wall_fps"] >= TARGETS["fps"],
            "face_fraction": run["frames_with_face"] / run["frames"] >= TARGETS["face_fraction"],
            "peak_rss_mb": ours["peak_rss_mb"] <= TARGETS["peak_rss_mb"]}


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default=str(CLIP))
    ap.add_argument("--config", help="YAML config (default configs/cpu.yaml)")
    ap.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads for ATPN (default: the config's)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-peer", action="store_true", help="skip MediaPipe")
    ap.add_argument("--out", default=str(ROOT / "out" / "bench_loop_cpu.json"))
    args = ap.parse_args(argv)
    clip = Path(args.clip)
    if not clip.is_file():
        print(f"skipped: {clip} is absent (development data in ../shared/data)", file=sys.stderr)
        return 0
    try:
        print(f"ATPN Edge loop on {clip.name}, {args.runs} runs:", flush=True)
        ours = time_ours(clip, args.config, args.threads, args.runs)
    except EdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    peer = None if args.no_peer else time_peer(clip, args.runs)
    run = ours["median_run"]
    ratio = run["wall_fps"] / peer["proc_only_median"]["fps"] if peer else None
    report = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "cpu_count": os.cpu_count(), "loadavg_end": os.getloadavg(),
              "opencv": cv2.__version__, "clip": str(clip), "ours": ours, "peer_mediapipe": peer,
              "fps_ratio_ours_over_mediapipe": ratio, "targets": TARGETS, "meets": verdict(ours)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(format_report(ours))
    if ratio is not None:
        print(f"ours / MediaPipe Face Mesh FPS: {ratio:.2f}")
    print(f"targets met: {report['meets']}  -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
