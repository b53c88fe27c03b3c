"""`pose`: mean absolute yaw / pitch / roll error of ATPN against teacher labels (no human pose labels exist)."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edge.errors import DatasetError
from edge.eval import metrics
from edge.eval.faces import FaceFinder, measure
from edge.eval.report import write_csv, write_json
from edge.eval.datasets import FaceRecord, read_teacher_npz

Row = Dict[str, Any]


def teacher_records(npz_path: str, image_root: Optional[str], limit: int) -> List[FaceRecord]:
    """The faces the teacher labelled; `limit` > 0 keeps that many, evenly spread over the file."""
    if not os.path.isfile(npz_path):
        raise DatasetError(f"{npz_path}: teacher labels not found; make them with `python -m edge.train.teacher`")
    records = read_teacher_npz(npz_path, image_root)
    if not records:
        raise DatasetError(f"{npz_path}: the teacher found no face in any image; nothing to compare against")
    if 0 < limit < len(records):
        records = [records[int(i)] for i in np.linspace(0, len(records) - 1, limit).round()]
    return records


def evaluate(records: Sequence[FaceRecord], finder: FaceFinder) -> List[Row]:
    """One row per face: teacher and predicted angles and their wrapped errors (NaN when not found)."""
    rows = []
    for record, aligned in measure(records, finder, "pose"):
        row: Row = {"image": os.path.basename(record.image_path), "found": aligned is not None,
                    "match_iou": math.nan if aligned is None else aligned.match_iou}
        truth = np.asarray(record.pose_deg, dtype=np.float64)
        pred = np.full(3, np.nan) if aligned is None else aligned.pose_deg.astype(np.float64)
        err = metrics.angle_error_deg(pred, truth)
        for i, name in enumerate(metrics.POSE_ANGLES):
            row.update({f"{name}_teacher": float(truth[i]), f"{name}_pred": float(pred[i]), f"{name}_err": float(err[i])})
        rows.append(row)
    return rows


def run(teacher: str, records: Sequence[FaceRecord], finder: FaceFinder, out: Path,
        model_info: Dict[str, str]) -> Tuple[Dict[str, Any], List[Path]]:
    """Evaluate the faces of `teacher`, then write pose.csv and pose.json into `out`."""
    rows = evaluate(records, finder)
    found = [r for r in rows if r["found"]]
    summary: Dict[str, Any] = {"command": "pose", "teacher": os.path.abspath(teacher), **model_info,
                               "boxes": finder.boxes, "passes": finder.stills.passes, "faces": len(rows),
                               "found": len(found), "detection_rate": len(found) / len(rows)}
    if not found:
        raise DatasetError(f"the detector found none of the {len(rows)} faces; check the images or use --boxes labels")
    pred = np.array([[r[f"{a}_pred"] for a in metrics.POSE_ANGLES] for r in found])
    truth = np.array([[r[f"{a}_teacher"] for a in metrics.POSE_ANGLES] for r in found])
    summary.update(metrics.pose_mae(pred, truth))
    return summary, [write_csv(out / "pose.csv", rows), write_json(out / "pose.json", summary)]
