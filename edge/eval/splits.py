"""`python -m edge.eval.splits`: HELEN test cut into a half to choose by and a half never chosen by, each
also as an in-the-wild copy (turned, scaled, shifted, blurred, recoloured, recompressed; labels moved along).

Why: a figure reported on the faces it was picked on flatters the model. `select/` (and `select_wild/`)
decides between weights and settings; `report/` (and `report_wild/`) is only ever measured for the model
card and the README. The cut is by a hash of each file name, so it is the same on every machine and run;
the wild copies are seeded per file. Earlier sessions chose stages on all of HELEN test, so `report/` is
clean only from session 7 on: say so beside its figures.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from edge.errors import DatasetError
from edge.eval.datasets import FaceRecord, read_pts_folder, write_pts
from edge.eval.report import progress

HALVES = ("select", "report")
WILD_ROLL_SD_DEG = 20.0  # in-plane turn ~ N(0, 20 deg), clipped to +-45: 300-W's hard faces roll far more than HELEN's
WILD_ROLL_MAX_DEG = 45.0


def half_of(name: str) -> str:
    """`select` or `report` for an image file name, from a hash: stable across machines and Python versions."""
    return HALVES[hashlib.sha256(name.encode()).digest()[0] & 1]


def wild_copy(image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """The photo turned, scaled and shifted on a canvas of its own size (edges replicated), then damaged as
    phones and webcams do; the landmarks follow the geometry exactly."""
    h, w = image.shape[:2]
    centre = landmarks.mean(0)
    angle = float(np.clip(rng.normal(0.0, WILD_ROLL_SD_DEG), -WILD_ROLL_MAX_DEG, WILD_ROLL_MAX_DEG))
    side = float(np.ptp(landmarks, axis=0).max())
    scale = float(rng.uniform(0.45, 0.8) * min(h, w) / side)  # the face fills 45-80 % of the short side
    matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, scale)
    target = np.array([w, h]) / 2 + rng.uniform(-0.12, 0.12, size=2) * min(h, w)
    matrix[:, 2] += target - centre
    out = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    points = landmarks @ matrix[:, :2].T + matrix[:, 2]
    if rng.random() < 0.5:
        gain = rng.uniform(0.6, 1.3) * rng.uniform(0.9, 1.1, size=3)
        out = np.clip(out.astype(np.float32) * gain + rng.uniform(-30, 30), 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.8, 2.0))
    if rng.random() < 0.3:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 60))])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return out, points


def write_splits(records: Sequence[FaceRecord], out: Path, seed: int) -> dict:
    """Each face into its half, plain and wild; returns the counts."""
    for half in HALVES:
        for kind in ("", "_wild"):
            (out / f"{half}{kind}").mkdir(parents=True, exist_ok=True)
    counts = {half: 0 for half in HALVES}
    for record in progress(records, "splits", "face"):
        name = Path(record.image_path).name
        half = half_of(name)
        image = cv2.imread(record.image_path, cv2.IMREAD_COLOR)
        if image is None:
            raise DatasetError(f"{record.image_path}: cannot read as an image; is the file complete?")
        stem = Path(name).stem
        cv2.imwrite(str(out / half / f"{stem}.png"), image)
        write_pts(str(out / half / f"{stem}.pts"), record.landmarks)
        rng = np.random.default_rng([seed, int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")])
        wild, points = wild_copy(image, record.landmarks, rng)
        cv2.imwrite(str(out / f"{half}_wild" / f"{stem}.png"), wild)
        write_pts(str(out / f"{half}_wild" / f"{stem}.pts"), points)
        counts[half] += 1
    return counts


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge.eval.splits", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", default="../shared/data/helen/test", help="labelled faces to cut (default: %(default)s)")
    ap.add_argument("--out", default="cache/splits", help="folder for select/, report/ and their _wild copies "
                                                          "(default: %(default)s)")
    ap.add_argument("--seed", type=int, default=2026, help="seed of the wild copies (default: %(default)s)")
    args = ap.parse_args(argv)
    try:
        records = read_pts_folder(args.images)
        counts = write_splits(records, Path(args.out), args.seed)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: --out {args.out}: cannot write there ({exc.strerror}); pick another folder", file=sys.stderr)
        return 2
    print(f"splits: {counts['select']} faces to choose by in {args.out}/select(_wild), {counts['report']} never "
          f"chosen by in {args.out}/report(_wild)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
