"""`python -m edge.setup_models`: make everything the runtime loads, into a folder git ignores.

- the ATPN ONNX files, exported from the shipped checkpoints (again when a checkpoint changes);
- more steps (detector, demo image) register themselves in STEPS.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable, List, Optional, Tuple

from edge.assets import fetch_astronaut
from edge.errors import EdgeError
from edge.pipeline.blazeface_convert import face_detectors

DEFAULT_DIR = Path(__file__).resolve().parents[1] / "models"


def atpn_onnx(models_dir: Path) -> str:
    """models/atpn68.onnx (the default model), exported again whenever the shipped checkpoint is newer."""
    from edge.model.export import DEFAULT_WEIGHTS

    return _export_when_stale(DEFAULT_WEIGHTS, models_dir / "atpn68.onnx")


def atpn_integral_onnx(models_dir: Path) -> str:
    """models/atpn68_integral.onnx, the opt-in integral-head model (`models.atpn` in a config selects it)."""
    from edge.model.export import DEFAULT_WEIGHTS

    weights = DEFAULT_WEIGHTS.with_name("atpn68_integral.pt")
    if not weights.is_file():
        return f"skipped ({weights.name} is not in weights/)"
    return _export_when_stale(weights, models_dir / "atpn68_integral.onnx")


def _export_when_stale(weights: Path, out: Path) -> str:
    from edge.model.export import export_onnx, model_from

    stale = weights.is_file() and out.is_file() and os.path.getmtime(weights) > os.path.getmtime(out)
    if out.is_file() and not stale:
        return f"{out} (cached)"
    model, tag = model_from(str(weights) if weights.is_file() else None, 68)
    export_onnx(model, str(out), weights_tag=tag)
    return f"{out} (exported, weights: {tag})"


STEPS: List[Tuple[str, Callable[[Path], str]]] = [
    ("ATPN", atpn_onnx),
    ("ATPN, integral head", atpn_integral_onnx),
    ("face detector", face_detectors),
    ("demo image", lambda models_dir: str(fetch_astronaut(models_dir))),
]


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", default=str(DEFAULT_DIR), help="where models go (default: %(default)s)")
    args = ap.parse_args(argv)
    models_dir = Path(args.dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    for name, step in STEPS:
        try:
            print(f"[models] {name}: {step(models_dir)}", flush=True)
        except EdgeError as exc:
            print(f"error: {name}: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
