#!/usr/bin/env python
"""Photo accuracy of the product beside MediaPipe Face Mesh, on the same labelled folders, in one table.

Ours: `python -m edge.eval landmarks` with a config (default configs/cpu.yaml), which runs each photo
exactly as `run_camera.py -i FOLDER` does. The peer: ../shared/peers/mediapipe_stills.py with our own
468 -> 68 map (edge/train/teacher_fit.npz), in its own venv when one exists (/tmp/peer-venv,
/work/teacher-venv). Default folders: the never-selected halves made by `python -m edge.eval.splits`
(cache/splits/report and report_wild) and all of HELEN test. Results: a table on stdout, JSON in --out.
Beside the table, the paired difference ours - MediaPipe over the same faces with a bootstrap 95 %
interval: "below MediaPipe" is claimed only where the whole interval is below zero.

  python bench/stills_accuracy.py
  python bench/stills_accuracy.py --config configs/cpu_accurate.yaml --folders cache/splits/select
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PEER = ROOT.parent / "shared" / "peers" / "mediapipe_stills.py"
PEER_PYTHONS = ("/tmp/peer-venv/bin/python", "/work/teacher-venv/bin/python")
FIT = ROOT / "edge" / "train" / "teacher_fit.npz"
FOLDERS = ("cache/splits/report", "cache/splits/report_wild", "../shared/data/helen/test")
PEER_LINE = re.compile(r"NME ([\d.]+), FR@10 ([\d.]+), AUC@10 ([\d.]+)")
PEER_REGIONS = re.compile(r"(jaw|brows|nose|eyes|mouth) ([\d.]+)")


def result_dir(out: Path, folder: str) -> Path:
    return out / "_".join(Path(folder).parts[-2:])  # report and helen/test, not both "test"


def per_face(csv_path: str) -> Dict[str, float]:
    """image -> NME from a CSV with `image` and `nme` columns (ours and the peer's write one each); a missed
    face (ours: inf) counts 1.0, as the peer counts its own."""
    with open(csv_path, newline="") as f:
        return {r["image"]: min(float(r["nme"]), 1.0) for r in csv.DictReader(f)}


def ours(folder: str, config: str, out: Path) -> Dict[str, Any]:
    result = result_dir(out, folder)
    cmd = [sys.executable, "-m", "edge.eval", "landmarks", "--images", folder, "--config", config, "--out", str(result)]
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    summary = json.loads((result / "landmarks.json").read_text())
    keys = ("faces", "found", "nme_mean", "fr_10", "auc_10", "nme_by_region", "model", "passes")
    return {**{k: summary[k] for k in keys}, "per_face": str(result / "landmarks.csv")}


def paired_difference(a: Dict[str, float], b: Dict[str, float], resamples: int = 10000,
                      seed: int = 0) -> Dict[str, float]:
    """Mean of a - b over the faces both scored, and a bootstrap 95 % interval of that mean (faces resampled
    together, so the hard faces both miss do not widen it)."""
    names = sorted(set(a) & set(b))
    diff = np.array([a[n] - b[n] for n in names])
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"faces": len(names), "mean": float(diff.mean()), "ci95_low": float(low), "ci95_high": float(high),
            "ours_better_faces": int((diff < 0).sum())}


def peer(folder: str, out: Path) -> Optional[Dict[str, Any]]:
    python = next((p for p in PEER_PYTHONS if os.path.exists(p)), None)
    if python is None or not PEER.exists():
        return None
    csv_path = result_dir(out, folder) / "mediapipe.csv"
    text = subprocess.run([python, str(PEER), folder, str(FIT), "--csv", str(csv_path)], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout
    found = PEER_LINE.search(text)
    if found is None:
        raise SystemExit(f"error: {PEER.name} printed no NME line for {folder}; run it by hand to see why")
    nme, fr, auc = (float(v) for v in found.groups())
    regions = {name: float(v) for name, v in PEER_REGIONS.findall(text.split("by region:")[-1])}
    return {"nme_mean": nme, "fr_10": fr, "auc_10": auc, "nme_by_region": regions, "per_face": str(csv_path)}


def row(name: str, r: Dict[str, Any]) -> str:
    regions = " / ".join(f"{100 * r['nme_by_region'][k]:.2f}" for k in ("jaw", "brows", "nose", "eyes", "mouth"))
    return f"| {name} | {100 * r['nme_mean']:.2f} % | {100 * r['fr_10']:.1f} % | {r['auc_10']:.3f} | {regions} |"


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "configs" / "cpu.yaml"), help="run settings (default: %(default)s)")
    ap.add_argument("--folders", nargs="+", default=list(FOLDERS), help="labelled folders (default: %(default)s)")
    ap.add_argument("--no-peer", action="store_true", help="skip MediaPipe")
    ap.add_argument("--out", default=str(ROOT / "out" / "stills_accuracy"), help="folder for the results")
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    missing = [f for f in args.folders if not os.path.isdir(f)]
    if missing:
        print(f"error: no folder {missing[0]}; make the splits with `python -m edge.eval.splits`", file=sys.stderr)
        return 2
    results: Dict[str, Any] = {"config": args.config}
    print("| folder, who | NME | FR@10 | AUC@10 | jaw / brows / nose / eyes / mouth % |\n|---|---|---|---|---|")
    for folder in args.folders:
        entry = {"ours": ours(os.path.abspath(folder), os.path.abspath(args.config), out)}  # it runs from the root
        print(row(f"{folder}, ours ({entry['ours']['faces']} faces)", entry["ours"]), flush=True)
        if not args.no_peer:
            entry["mediapipe"] = peer(os.path.abspath(folder), out)
            if entry["mediapipe"]:
                print(row(f"{folder}, MediaPipe + our map", entry["mediapipe"]), flush=True)
                entry["ours_minus_mediapipe"] = paired_difference(per_face(entry["ours"]["per_face"]),
                                                                  per_face(entry["mediapipe"]["per_face"]))
        results[folder] = entry
    for folder in args.folders:
        d = results[folder].get("ours_minus_mediapipe")
        if d:
            verdict = "below MediaPipe" if d["ci95_high"] < 0 else "above" if d["ci95_low"] > 0 else "no clear difference"
            print(f"{folder}: ours - MediaPipe {100 * d['mean']:+.2f} % NME, 95 % interval [{100 * d['ci95_low']:+.2f}, "
                  f"{100 * d['ci95_high']:+.2f}] over {d['faces']} faces ({d['ours_better_faces']} better): {verdict}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "stills_accuracy.json").write_text(json.dumps(results, indent=1))
    print(f"results: {out / 'stills_accuracy.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
