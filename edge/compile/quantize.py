"""`python -m edge.compile.quantize --onnx models/atpn68.onnx --calib calibration/atpn`: a Q/DQ ONNX, on the CPU.

Explicit quantization for TensorRT (the only INT8 route in TensorRT 11, and the portable one before):
ONNX Runtime's static quantizer in QDQ format, symmetric int8 activations and weights, per-channel
weights, float biases — what TensorRT's ONNX parser accepts. Scales come from the same calibration
set the entropy calibrator reads. `--keep-float after-landmarks` leaves the heatmap renderer and
everything it feeds (fusion, pose and track heads) in float, and a soft-argmax head's last layers
(edge/compile/precision.py); see bench/int8_accuracy.py for the cost of each choice.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, Iterator, List, Optional

from edge.config import ModelsConfig
from edge.pipeline.calibration_set import CalibrationSet
from edge.compile.precision import LANDMARK_OUTPUT, Layer, float_layers
from edge.errors import EdgeError, ModelError
from edge.fileio import atomic_path

KEEP_FLOAT = ("none", "after-landmarks")
DEFAULT_KEEP_FLOAT = "after-landmarks"
METHODS = ("minmax", "percentile")
QUANT_METADATA_KEY = "atpn_quantization"


def float_nodes(graph: Any) -> List[str]:
    """The ONNX nodes that stay float: edge.compile.precision's rule, the one the TensorRT route uses too."""
    constants = {t.name for t in graph.initializer}
    for node in graph.node:  # topological order; Constant nodes, and the exporter's Identity of a weight
        if all(t in constants for t in node.input if t):
            constants.update(node.output)
    layers = [Layer(node.name, node.op_type == "Softmax", tuple(t for t in node.input if t and t not in constants),
                    tuple(node.output)) for node in graph.node]
    return float_layers(layers, LANDMARK_OUTPUT)


class _Reader:
    """ONNX Runtime's CalibrationDataReader over a calibration set (duck-typed: get_next).

    Batches are all the same size: ORT's histogram methods stack them into one array.
    """

    def __init__(self, calib: CalibrationSet, input_name: str, batch: int = 16) -> None:
        self._it: Iterator[Any] = calib.batches(min(batch, calib.count))
        self._name = input_name

    def get_next(self) -> Optional[Dict[str, Any]]:
        batch = next(self._it, None)
        return None if batch is None else {self._name: batch}


def quantize_qdq(onnx_path: str, calib_dir: str, out_path: str, keep_float: str = DEFAULT_KEEP_FLOAT,
                 method: str = "minmax") -> Dict[str, Any]:
    """Write a Q/DQ copy of `onnx_path` to `out_path` (atomically); returns what was done (also in its metadata)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if keep_float not in KEEP_FLOAT or method not in METHODS:
        raise ModelError(f"--keep-float must be one of {', '.join(KEEP_FLOAT)} and --method one of "
                         f"{', '.join(METHODS)}; got {keep_float!r}, {method!r}")
    from edge.compile.onnx_info import inspect_onnx

    info = inspect_onnx(onnx_path)
    if info.has_qdq:
        raise ModelError(f"{onnx_path} is already quantized (it has Q/DQ nodes); quantize the FP32 model")
    calib = CalibrationSet.open(calib_dir)
    name = calib.check_model(onnx_path, info.inputs, info.metadata)
    calibrate = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}[method]
    with atomic_path(out_path, suffix=".onnx") as tmp:
        # ORT's pre-processing folds the exporter's Identity/Constant nodes (biases become initializers,
        # which TensorRT wants in float) and infers shapes; its output is plain ONNX.
        quant_pre_process(onnx_path, tmp, skip_symbolic_shape=True)
        graph = onnx.load(tmp).graph
        exclude = float_nodes(graph) if keep_float == "after-landmarks" else []
        try:
            quantize_static(
                tmp, tmp, _Reader(calib, name), quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, nodes_to_exclude=exclude,
                calibrate_method=calibrate,
                extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False},
            )
        except ValueError as exc:  # ORT's histogram methods fail on a tensor that never changes
            raise ModelError(f"ONNX Runtime's {method} calibration failed on {onnx_path} ({exc}); "
                             "use --method minmax") from exc
        summary = {"format": "QDQ int8 symmetric, per-channel weights, float bias", "method": method,
                   "keep_float": keep_float, "float_nodes": len(exclude), "calibration": calib.folder,
                   "calibration_crops": calib.count, "calibration_fingerprint": calib.fingerprint(),
                   "source_sha256": info.sha256}
        quantized = onnx.load(tmp)
        _set_metadata(quantized, dict(info.metadata, **{QUANT_METADATA_KEY: json.dumps(summary)}))
        onnx.checker.check_model(quantized)
        onnx.save(quantized, tmp)
        inferred = tmp.replace(".onnx", "-inferred.onnx")  # quant_pre_process's own scratch file
        if os.path.exists(inferred):
            os.remove(inferred)
    return summary


def _set_metadata(model: Any, values: Dict[str, str]) -> None:
    del model.metadata_props[:]
    for key, value in sorted(values.items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge.compile.quantize", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", default=ModelsConfig().path("atpn"), help="FP32 ATPN model, the one the calibration set "
                    "was cut for (default: the config's, %(default)s)")
    ap.add_argument("--calib", required=True, help="calibration set from `python -m edge.pipeline.calibration`")
    ap.add_argument("--out", help="Q/DQ model to write (default: beside --onnx, as <stem>.qdq.onnx)")
    ap.add_argument("--keep-float", choices=KEEP_FLOAT, default=DEFAULT_KEEP_FLOAT,
                    help="layers left in float (default: %(default)s)")
    ap.add_argument("--method", choices=METHODS, default="minmax", help="activation range estimate (default: %(default)s)")
    args = ap.parse_args(argv)
    out = args.out or os.path.splitext(args.onnx)[0] + ".qdq.onnx"
    try:
        summary = quantize_qdq(args.onnx, args.calib, out, args.keep_float, args.method)
    except EdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}: {summary['format']}, {summary['method']} ranges from {summary['calibration_crops']} crops, "
          f"{summary['float_nodes']} nodes kept in float ({summary['keep_float']}); build it with "
          f"`python build_engine.py --onnx {out} --int8 --qdq`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
