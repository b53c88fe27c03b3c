"""`python -m edge.train.ensemble_teacher`: the teacher's landmarks averaged with ATPN's own, a better teacher.

MediaPipe mapped to 68 points and our ATPN (mirror-averaged, two passes from the teacher's crop) err in
different places, so their mean is closer to human labels than either: on the `select` half of HELEN test
(python -m edge.eval.splits) 3.78 % (MediaPipe) and 3.75 % (ATPN) become 3.55 % NME. Pose and everything else
stay the teacher's. Runs in the project's venv (no MediaPipe needed), on the files edge.train.teacher wrote:

  python -m edge.train.ensemble_teacher --teacher cache/teacher --model models/atpn68_integral.onnx \\
      --out cache/teacher_ensemble
then point a training config's data.teacher_dir at the --out folder.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import Optional, Sequence

import cv2
import numpy as np

from edge.errors import EdgeError
from edge.eval.datasets import load_teacher_arrays, write_teacher_npz
from edge.eval.report import progress
from edge.model.crop import crop_from_landmarks
from edge.pipeline.aligner import Aligner, refine
from edge.runtime import open_engine

SETS = ("helen_train", "helen_test", "utkface")
AVERAGED = ("utkface",)  # the sets whose landmarks training takes from the teacher (HELEN's are human)
PASSES = 2


def ensemble_landmarks(aligner: Aligner, root: str, files: Sequence[str], teacher: np.ndarray,
                       ok: np.ndarray) -> np.ndarray:
    """[M,68,2]: the mean of the teacher's points and ATPN's, from a crop the teacher's points place."""
    out = teacher.copy()
    for i in progress(np.flatnonzero(ok), "ensemble", "face"):
        image = cv2.imread(os.path.join(root, str(files[i])), cv2.IMREAD_COLOR)
        if image is None:
            raise EdgeError(f"{os.path.join(root, str(files[i]))}: not a readable image")
        crops = [crop_from_landmarks(teacher[i], aligner.spec.crop_scale)]
        points = refine(aligner, image, crops, PASSES, aligner.spec.crop_scale).landmarks_px[0]
        out[i] = (teacher[i] + points) / 2
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge.train.ensemble_teacher", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", default="cache/teacher", help="edge.train.teacher's folder (default: %(default)s)")
    ap.add_argument("--model", default="models/atpn68_integral.onnx", help="ATPN ONNX (default: %(default)s)")
    ap.add_argument("--out", default="cache/teacher_ensemble", help="folder for the new files (default: %(default)s)")
    args = ap.parse_args(argv)
    try:
        aligner = Aligner(open_engine(args.model, threads=0), mirror_average=True)
        for name in SETS:
            source, target = os.path.join(args.teacher, name + ".npz"), os.path.join(args.out, name + ".npz")
            os.makedirs(args.out, exist_ok=True)
            if name not in AVERAGED:
                shutil.copyfile(source, target)
                continue
            data = load_teacher_arrays(source)
            extra = {k: v for k, v in data.items() if k not in ("root", "files", "landmarks", "pose", "ok")}
            landmarks = ensemble_landmarks(aligner, str(data["root"]), data["files"], data["landmarks"], data["ok"])
            write_teacher_npz(target, str(data["root"]), list(data["files"]), landmarks, data["pose"], data["ok"],
                              **extra)
            print(f"{target}: {int(data['ok'].sum())} faces, teacher and {os.path.basename(args.model)} averaged")
    except (EdgeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
