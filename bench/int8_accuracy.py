#!/usr/bin/env python3
"""What INT8 costs ATPN: Q/DQ models against FP32, with ONNX Runtime on the CPU, on held-out crops.

  python -m edge.pipeline.calibration --input CLIP_OR_IMAGES --out calibration/atpn          # quantization set
  python -m edge.pipeline.calibration --input /work/shared/data/helen/test --out cache/helen_test  # held out
  python bench/int8_accuracy.py --calib calibration/atpn --held-out cache/helen_test

Quantizes the model each way (all INT8, or the heatmap renderer and the heads it feeds kept in
float; MinMax or percentile ranges), then reports per variant the landmark NME difference
(normalised by the FP32 inter-ocular distance), the mean point shift in input pixels, the pose
difference (deg) and the track-score difference. `--qdq FILE` compares one existing Q/DQ model.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from edge.compile.accuracy import compare_outputs, run_onnx  # noqa: E402
from edge.pipeline.calibration_set import CalibrationSet  # noqa: E402
from edge.compile.quantize import KEEP_FLOAT, METHODS, quantize_qdq  # noqa: E402
from edge.errors import EdgeError, ModelError  # noqa: E402
from edge.model.spec import METADATA_KEY, ModelSpec  # noqa: E402

VARIANTS: List[Tuple[str, str]] = [(keep, method) for keep in KEEP_FLOAT for method in METHODS]


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", default="models/atpn68.onnx", help="FP32 ATPN (default: %(default)s)")
    ap.add_argument("--calib", help="calibration set the Q/DQ variants are quantized from")
    ap.add_argument("--held-out", required=True, help="calibration-style crop folder to compare on (not the --calib set)")
    ap.add_argument("--qdq", help="compare this Q/DQ model only (no quantization here)")
    ap.add_argument("--work", default="cache/int8_bench", help="where the variants go (default: %(default)s)")
    ap.add_argument("--max-crops", type=int, default=500)
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args(argv)
    try:
        held = CalibrationSet.open(args.held_out)
        if args.calib and os.path.realpath(args.calib) == os.path.realpath(args.held_out):
            raise EdgeError("--held-out must not be the --calib set: that would measure on the data the scales came from")
        candidates = variants(args) if not args.qdq else {"given": args.qdq}
        spec = checked_spec(args.onnx, held)
        crops = held.all_crops(args.max_crops)
        ref = run_onnx(args.onnx, crops)
        results: Dict[str, Dict[str, float]] = {}
        print(f"{len(crops)} held-out crops from {held.folder}; reference {args.onnx} (FP32, ONNX Runtime CPU)")
        for name, path in candidates.items():
            diff = compare_outputs(ref, run_onnx(path, crops), spec.input_size)
            results[name] = diff.as_dict()
            print(f"  {name:28s} {diff.describe()}")
    except EdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"onnx": args.onnx, "held_out": args.held_out, "calib": args.calib, "results": results}, f,
                      indent=2)
    return 0


def variants(args: argparse.Namespace) -> Dict[str, str]:
    if not args.calib:
        raise EdgeError("pass --calib DIR (to quantize the variants) or --qdq FILE (to compare one model)")
    out = {}
    for keep, method in VARIANTS:
        path = os.path.join(args.work, f"{keep}.{method}.qdq.onnx")
        try:
            quantize_qdq(args.onnx, args.calib, path, keep, method)
        except ModelError as exc:
            print(f"  int8 {keep} ({method}): skipped, {exc}")
            continue
        out[f"int8 {keep} ({method})"] = path
    return out


def checked_spec(onnx_path: str, held: CalibrationSet) -> ModelSpec:
    """The ATPN export's spec, once the held-out crops are known to be cut the way it cuts them."""
    from edge.compile.onnx_info import inspect_onnx

    info = inspect_onnx(onnx_path)
    if METADATA_KEY not in info.metadata:
        raise ModelError(f"{onnx_path}: not an ATPN export; give --onnx models/atpn68.onnx or another edge export")
    held.check_model(onnx_path, info.inputs, info.metadata)
    return ModelSpec.from_json(info.metadata[METADATA_KEY])


if __name__ == "__main__":
    sys.exit(main())
