"""`python -m edge.model.export`: ATPN checkpoint -> ONNX (opset 17, dynamic batch, spec in metadata)."""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import Optional

import onnx
import torch

from edge.errors import EdgeError, ModelError
from edge.fileio import PROJECT_ROOT, atomic_path
from edge.model.atpn import ATPN, build_atpn, load_checkpoint
from edge.model.spec import INPUT_NAME, METADATA_KEY, OUTPUT_NAMES, ModelSpec

OPSET = 17
DEFAULT_WEIGHTS = PROJECT_ROOT / "weights" / "atpn68.pt"


def export_onnx(model: ATPN, path: str, opset: int = OPSET, weights_tag: str = "untrained") -> str:
    """Write `model` to `path` atomically; the file carries the ModelSpec as metadata."""
    spec = model.spec
    model = model.eval()
    dummy = torch.zeros(2, 3, spec.input_size, spec.input_size)
    with atomic_path(path, suffix=".onnx") as tmp:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter gives plain ops TRT 8.5 parses
            torch.onnx.export(
                _TupleOutputs(model).eval(), (dummy,), tmp, dynamo=False, opset_version=opset,
                input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                dynamic_axes={name: {0: "batch"} for name in (INPUT_NAME, *OUTPUT_NAMES)},
            )
        proto = onnx.load(tmp)
        for key, value in ((METADATA_KEY, spec.to_json()), ("atpn_weights", weights_tag)):
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        proto.producer_name = "atpn-edge"
        onnx.checker.check_model(proto)
        onnx.save(proto, tmp)
    return path


class _TupleOutputs(torch.nn.Module):
    """The exporter wants a tuple in OUTPUT_NAMES order, not a dict."""

    def __init__(self, model: ATPN) -> None:
        super().__init__()
        self.model = model

    def forward(self, crop: torch.Tensor) -> tuple:
        out = self.model(crop)
        return tuple(out[name] for name in OUTPUT_NAMES)


def model_from(weights: Optional[str], landmarks: int) -> "tuple[ATPN, str]":
    """The checkpoint if given (or the shipped one), else a fresh, untrained network."""
    if weights:
        if not os.path.isfile(weights):
            raise ModelError(f"{weights}: checkpoint not found; train one with `python -m edge.train` or omit --weights")
        try:
            return load_checkpoint(weights), Path(weights).name
        except Exception as exc:  # torch raises many types for a bad file
            raise ModelError(f"{weights}: not an ATPN checkpoint ({type(exc).__name__}: {exc})") from exc
    if landmarks == 68 and DEFAULT_WEIGHTS.is_file():
        return load_checkpoint(str(DEFAULT_WEIGHTS)), DEFAULT_WEIGHTS.name
    return build_atpn(ModelSpec(num_landmarks=landmarks)), "untrained"


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="models/atpn68.onnx", help="ONNX file to write (default: %(default)s)")
    ap.add_argument("--weights", default=None, help=f"checkpoint (default: {DEFAULT_WEIGHTS.name} if shipped, else untrained)")
    ap.add_argument("--landmarks", type=int, default=68, choices=(68, 98), help="points, for an untrained model")
    ap.add_argument("--opset", type=int, default=OPSET)
    args = ap.parse_args(argv)
    try:
        model, tag = model_from(args.weights, args.landmarks)
        path = export_onnx(model, args.out, args.opset, tag)
    except EdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path} (weights: {tag}, opset {args.opset}, {model.spec.num_landmarks} points)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
