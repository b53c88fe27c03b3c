"""`python -m edge.eval {landmarks,pose,tracking}`: measure ATPN with the runtime's own detector and tracker.

  landmarks  NME (outer eye corners), FR@10, AUC@10, per-face CSV and a CED plot, on folders of image + .pts
  pose       mean absolute yaw/pitch/roll error against teacher labels (edge.train.teacher)
  tracking   synthetic sequences from labelled stills: NME, fraction of frames tracked, detector use

Engines, detector threshold and tracker settings come from --config, as for the camera loop.
Results (CSV, JSON summary, plot) go to --out; the summary is also printed. Bad input: one line, exit 2.

examples:
  python -m edge.eval landmarks --images ../shared/data/helen/test
  python -m edge.eval landmarks --images ../shared/data/helen/test --baseline cache/teacher/helen_test.npz
  python -m edge.eval landmarks --images ../shared/data/helen/test --boxes labels --passes 2
  python -m edge.eval pose --teacher cache/teacher/helen_test.npz
  python -m edge.eval tracking --images ../shared/data/helen/test --sequences 20
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from edge.config import DEFAULT_CONFIG, PROJECT_ROOT, Config, load_config
from edge.errors import EdgeError
from edge.eval import landmarks, pose, tracking
from edge.eval.faces import BOX_MODES, FaceFinder
from edge.eval.report import output_dir, print_summary
from edge.eval.sequences import config_for_length
from edge.app.run import open_pipeline
from edge.pipeline.loop import FacePipeline
from edge.runtime import BACKENDS
from edge.eval.datasets import read_pts_folder

SUMMARY_KEYS = {
    "landmarks": ("faces", "found", "detection_rate", "nme_mean", "nme_median", "fr_10", "auc_10", "nme_by_region"),
    "pose": ("faces", "found", "detection_rate", "yaw_mae", "pitch_mae", "roll_mae", "mean_mae"),
    "tracking": ("sequences", "frames", "visible_frames", "tracked_fraction", "tracked_within_15", "detector_fraction",
                 "detector_fraction_visible", "nme_tracked_mean", "fr_10", "auc_10", "false_face_fraction_away"),
}


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("models and runtime (default: from --config)")
    group.add_argument("--config", default=str(DEFAULT_CONFIG), help="run settings YAML (default: %(default)s)")
    group.add_argument("--model", help="ATPN ONNX (default: the config's, as run_camera.py uses it: models.atpn_stills "
                                       "for photos, models.atpn for the tracking sequences)")
    group.add_argument("--detector", help="face detector ONNX (default: models.detector of the config)")
    group.add_argument("--backend", choices=BACKENDS, help="runtime backend (default: runtime.backend of the config)")
    group.add_argument("--threads", type=int, help="ONNX Runtime threads (0 = all cores)")
    group.add_argument("--mirror-average", action="store_true", default=None,
                       help="ATPN also sees each face mirrored and averages the two (runtime.mirror_average)")
    common.add_argument("--out", help="folder for the results (default: out/eval/COMMAND)")

    boxes = argparse.ArgumentParser(add_help=False)
    boxes.add_argument("--boxes", choices=BOX_MODES, default="detector",
                       help="first crop from our detector (default; a missed face counts as NME = inf) or "
                            "from the labelled landmarks (an oracle: the network alone)")
    boxes.add_argument("--passes", type=int,
                       help="ATPN passes per face; each extra one re-crops from the last landmarks (default: "
                            "stills.passes of the config, as run_camera.py runs photos)")

    ap = argparse.ArgumentParser(prog="python -m edge.eval", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    lm = sub.add_parser("landmarks", parents=[common, boxes], help="NME / FR@10 / AUC@10 / CED on image + .pts",
                        description="Landmark accuracy on a folder of images with .pts files of the same stem.")
    lm.add_argument("--images", required=True, help="folder of images + 68-point .pts (e.g. ../shared/data/helen/test)")
    lm.add_argument("--baseline", help="teacher labels (.npz) of the same images, drawn as a second CED curve")

    po = sub.add_parser("pose", parents=[common, boxes], help="yaw/pitch/roll MAE against teacher labels",
                        description="Head-pose error against teacher labels (no human pose labels exist).")
    po.add_argument("--teacher", required=True, help="teacher labels, e.g. cache/teacher/helen_test.npz")
    po.add_argument("--images", help="folder of the teacher's images (default: the folder stored in the file)")
    po.add_argument("--limit", type=int, default=0, help="evaluate N faces spread over the file (0 = all)")

    tr = sub.add_parser("tracking", parents=[common], help="detector + ATPN + tracker on synthetic sequences",
                        description="Synthetic sequences from labelled stills (pan, zoom, roll, blur, the face "
                                    "leaving and coming back); every frame's landmarks are known. Seeded.")
    tr.add_argument("--images", required=True, help="folder of images + 68-point .pts to make sequences from")
    tr.add_argument("--sequences", type=int, default=20, help="stills used, one sequence each (default: %(default)s)")
    tr.add_argument("--frames", type=int, default=300,
                    help="frames per sequence (10 s at 30 fps); the face walks out and back over 60 of them "
                         "(default: %(default)s)")
    tr.add_argument("--seed", type=int, default=0, help="random seed of the motion (default: %(default)s)")
    return ap


def load_run_config(args: argparse.Namespace) -> Config:
    """The config file with the command-line overrides; paths given here are taken from the cwd."""
    overrides = {"models.atpn": _absolute(args.model), "models.atpn_stills": _absolute(args.model),
                 "models.detector": _absolute(args.detector),
                 "runtime.backend": args.backend, "runtime.threads": args.threads,
                 "runtime.mirror_average": args.mirror_average}
    return load_config(args.config).with_overrides(overrides)


def model_info(config: Config, pipeline: FacePipeline) -> Dict[str, Any]:
    """What was measured: written into every summary so numbers stay tied to their model."""
    engine = pipeline.aligner.engine
    return {"model": engine.path, "weights": engine.metadata.get("atpn_weights", "unknown"),
            "detector": config.models.path("detector"), "backend": config.runtime.backend,
            "mirror_average": config.runtime.mirror_average}


def run(args: argparse.Namespace) -> Tuple[Dict[str, Any], List[Path]]:
    config = load_run_config(args)
    _check_counts(args)
    if args.command == "pose":
        records = pose.teacher_records(args.teacher, args.images, args.limit)
    else:
        records = read_pts_folder(args.images)  # bad input fails here, before the engines load
    out = output_dir(args.out or str(PROJECT_ROOT / "out" / "eval" / args.command))
    with ExitStack() as stack:
        pipeline = open_pipeline(config, stack, stills=args.command != "tracking")  # photos as run_camera runs them
        info = model_info(config, pipeline)
        if args.command == "tracking":
            return tracking.run(args.images, records, args.sequences, config_for_length(args.frames), args.seed,
                                pipeline, out, info)
        stills = replace(config.stills, passes=args.passes) if args.passes else config.stills
        finder = FaceFinder(pipeline, args.boxes, stills)
        if args.command == "pose":
            return pose.run(args.teacher, records, finder, out, info)
        return landmarks.run(args.images, records, finder, out, info, args.baseline)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(argv)
    try:
        summary, files = run(args)
    except (EdgeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print_summary(f"{args.command}: {summary.get('weights')} weights, {summary.get('boxes', 'tracker')} boxes",
                  summary, SUMMARY_KEYS[args.command], files)
    return 0


def _check_counts(args: argparse.Namespace) -> None:
    """Counts the parser cannot bound, checked before any work starts."""
    least = {"passes": 1, "limit": 0, "sequences": 1, "frames": 2}
    for name, low in least.items():
        value = getattr(args, name, low)
        if value is not None and value < low:
            raise EdgeError(f"--{name} must be >= {low}, got {value}")


def _absolute(path: Optional[str]) -> Optional[str]:
    return os.path.abspath(path) if path else None


if __name__ == "__main__":
    sys.exit(main())
