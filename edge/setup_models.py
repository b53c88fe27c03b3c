"""`python -m edge.setup_models`: make everything the runtime loads, into a folder git ignores.

- the ATPN ONNX, exported from the shipped checkpoint (re-exported when the checkpoint changes);
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
    """models/atpn68.onnx, exported again whenever the shipped checkpoint is newer."""
    from edge.model.export import DEFAULT_WEIGHTS, export_onnx, model_from

    out = models_dir / "atpn68.onnx"
    stale = DEFAULT_WEIGHTS.is_file() and out.is_file() and os.path.getmtime(DEFAULT_WEIGHTS) > os.path.getmtime(out)
    if out.is_file() and not stale:
        return f"{out} (cached)"
    model, tag = model_from(None, 68)
    export_onnx(model, str(out), weights_tag=tag)
    return f"{out} (exported, weights: {tag})"


STEPS: List[Tuple[str, Callable[[Path], str]]] = [
    ("ATPN", atpn_onnx),
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
