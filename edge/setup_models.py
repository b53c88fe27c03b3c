"""`python -m edge.setup_models`: make everything the runtime loads, into a folder git ignores.

- the ATPN ONNX files, exported from the shipped checkpoints (again when a checkpoint changes);
- the BlazeFace detectors (MediaPipe's .tflite files, converted to ONNX) and the demo image.

A file can break after it was made (a copy cut short, a full disk, a failing SD card), and a broken
file must not pass for a cached one: every file a step makes is recorded with its size and SHA-256
in `checksums.json` beside it, and one that no longer matches is removed and made again. A file
without a record (made before the record existed, or put there by hand) is kept when it is sound:
the pinned SHA-256 for files from wheels, a full parse for ONNX.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from edge.assets import ASTRONAUT_PNG, PINNED, fetch_astronaut
from edge.errors import EdgeError
from edge.fileio import MODELS_DIR, file_sha256, write_atomic
from edge.detectors.blazeface_convert import VARIANTS, face_detectors

CHECKSUMS = "checksums.json"  # {file name: {"bytes": size, "sha256": hex}} of what the steps made

Record = Dict[str, Dict[str, object]]


def shipped_atpn_onnx(weights_name: str, onnx_name: str, untrained_if_missing: bool = False) -> Callable[[Path], str]:
    """A step exporting weights/`weights_name` to models/`onnx_name`, again whenever the weights are newer. A
    missing weights file skips the step, or exports an untrained network (`untrained_if_missing`: the regression
    model, so a checkout without weights still runs end to end)."""
    def export(models_dir: Path) -> str:
        from edge.model.export import DEFAULT_WEIGHTS

        weights = DEFAULT_WEIGHTS.with_name(weights_name)
        if not weights.is_file() and not untrained_if_missing:
            return f"skipped ({weights.name} is not in weights/)"
        return _export_when_stale(weights, models_dir / onnx_name)
    return export


def _export_when_stale(weights: Path, out: Path) -> str:
    from edge.model.export import export_onnx, model_from

    stale = weights.is_file() and out.is_file() and os.path.getmtime(weights) > os.path.getmtime(out)
    if out.is_file() and not stale:
        return f"{out} (cached)"
    model, tag = model_from(str(weights) if weights.is_file() else None, 68)
    export_onnx(model, str(out), weights_tag=tag)
    return f"{out} (exported, weights: {tag})"


@dataclass(frozen=True)
class Step:
    name: str
    files: Tuple[str, ...]  # what it makes in the models folder: checked before it runs, recorded after
    make: Callable[[Path], str]


STEPS: List[Step] = [
    Step("ATPN, regression head (Jetson presets)", ("atpn68.onnx",),
         shipped_atpn_onnx("atpn68.pt", "atpn68.onnx", untrained_if_missing=True)),
    Step("ATPN, integral head (video)", ("atpn68_integral.onnx",),
         shipped_atpn_onnx("atpn68_integral.pt", "atpn68_integral.onnx")),
    Step("ATPN for photos", ("atpn68_stills.onnx",), shipped_atpn_onnx("atpn68_stills.pt", "atpn68_stills.onnx")),
    Step("face detector", tuple(v.tflite.filename for v in VARIANTS) + tuple(v.onnx_name for v in VARIANTS),
         face_detectors),
    Step("demo image", (ASTRONAUT_PNG.filename,), lambda models_dir: str(fetch_astronaut(models_dir))),
]


def damage(path: Path, recorded: Optional[Dict[str, object]]) -> Optional[str]:
    """Why the file at `path` cannot be kept, or None when it is sound (or absent: its step makes it)."""
    if not path.is_file():
        return None
    size = path.stat().st_size
    if size == 0:
        return "empty"
    if recorded is not None:
        if size != recorded["bytes"]:
            return f"{size} bytes where {recorded['bytes']} were written"
        return None if file_sha256(path) == recorded["sha256"] else "its SHA-256 is not the one recorded when it was made"
    pinned = PINNED.get(path.name)
    if pinned is not None:
        return None if file_sha256(path) == pinned.sha256 else f"not the file pinned from {pinned.requirement}"
    return _unreadable_onnx(path) if path.suffix == ".onnx" else None


def _unreadable_onnx(path: Path) -> Optional[str]:
    import onnx

    try:
        onnx.checker.check_model(onnx.load(str(path)))
    except Exception as exc:  # protobuf's DecodeError, onnx's ValidationError and kin share no base class
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"not a readable ONNX model ({first})"
    return None


def read_checksums(models_dir: Path) -> Record:
    """The record of what the steps made; a missing or unreadable one is empty (files are then checked by content)."""
    try:
        record = json.loads((models_dir / CHECKSUMS).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def run_step(step: Step, models_dir: Path, record: Record, say: Callable[[str], None]) -> None:
    """Remove what is damaged, run the step, record what it left."""
    for name in step.files:
        why = damage(models_dir / name, record.get(name))
        if why is not None:
            (models_dir / name).unlink()
            say(f"{name} is damaged ({why}): removed, making it again")
    say(step.make(models_dir))
    for name in step.files:
        path = models_dir / name
        if path.is_file():
            record[name] = {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
        else:
            record.pop(name, None)
    write_atomic(str(models_dir / CHECKSUMS), json.dumps(record, indent=1, sort_keys=True).encode())


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default=str(MODELS_DIR), help="where models go (default: %(default)s)")
    args = ap.parse_args(argv)
    models_dir = Path(args.dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    record = read_checksums(models_dir)
    for step in STEPS:
        try:
            run_step(step, models_dir, record, lambda line: print(f"[models] {step.name}: {line}", flush=True))
        except EdgeError as exc:
            print(f"error: {step.name}: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
