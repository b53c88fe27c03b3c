#!/usr/bin/env python3
"""Build a TensorRT engine from an ONNX model (flags named as in trtexec / Polygraphy).

  python build_engine.py --onnx models/atpn68.onnx --fp16
  python build_engine.py --onnx models/atpn68.onnx --int8 --calib calibration/atpn --batch 1:4:8
  python build_engine.py --onnx models/atpn68.qdq.onnx --int8 --qdq
  python build_engine.py --config configs/jetson_orin_nano.yaml      # its `build:` section
  python build_engine.py --onnx models/atpn68.onnx --compute-capability 8.9   # TensorRT-RTX, no GPU needed

Full TensorRT (Jetson, data-centre GPUs) is used where installed, else TensorRT-RTX (GeForce/RTX PRO;
strongly typed: no --fp16, INT8 only as --int8 --qdq); ATPN_TENSORRT=tensorrt_rtx picks RTX.
The engine goes under engines/ (name: model, precision, batch profile, library and version, GPU) with
a JSON sidecar that the runtime checks; an up-to-date engine is reused unless --rebuild.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from edge.compile.builder import build_engine
from edge.compile.request import request_from
from edge.runtime.trt_compat import describe_library
from edge.errors import EdgeError


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", help="ONNX model to build")
    ap.add_argument("--fp16", action="store_true", help="allow FP16 kernels (TensorRT < 11)")
    ap.add_argument("--int8", action="store_true", help="INT8: with --calib DIR (calibrated) or --qdq (Q/DQ model)")
    ap.add_argument("--calib", metavar="DIR", help="calibration set from `python -m edge.pipeline.calibration`")
    ap.add_argument("--qdq", action="store_true", help="the ONNX holds Q/DQ nodes (from `python -m edge.compile.quantize`)")
    ap.add_argument("--batch", metavar="MIN:OPT:MAX", help="faces per call for dynamic inputs (default: 1:4:8)")
    ap.add_argument("--workspace", type=int, metavar="MiB", help="builder scratch memory cap (default: TensorRT's)")
    ap.add_argument("--timing-cache", metavar="FILE", help="timing cache to reuse and update "
                    "(default: engines/timing.trt<version>.<gpu>.cache)")
    ap.add_argument("--save-engine", metavar="FILE", help="engine path (default: engines/<model>.<precision>."
                    "trt<version>.<gpu>.engine; the sidecar is FILE.json)")
    ap.add_argument("--compute-capability", metavar="X.Y", help="TensorRT-RTX: build for GPUs of this compute "
                    "capability (7.5, 8.0, 8.6, 8.9, 12.0) instead of the GPU present; needs no GPU")
    ap.add_argument("--config", metavar="YAML", help="read flags from the file's `build:` section (flags given win)")
    ap.add_argument("--rebuild", action="store_true", help="build even if an up-to-date engine exists")
    return ap.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    flags = {k: v for k, v in vars(args).items() if k != "config"}
    try:
        result = build_engine(request_from(args.config, flags))
    except EdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    side = result.sidecar
    size_mib = os.path.getsize(result.engine_path) / (1 << 20)
    if not result.built:
        print(f"{result.engine_path}: {result.note}")
        return 0
    print(f"built {result.engine_path} ({size_mib:.1f} MiB) in {side.build_seconds:.1f} s: {side.key.precision}, "
          f"{describe_library(side.key.tensorrt)}, {side.key.gpu.describe()}; reason: {result.note}")
    print(f"sidecar {result.engine_path}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
