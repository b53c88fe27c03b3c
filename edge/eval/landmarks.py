"""`landmarks`: NME / FR@10 / AUC@10 and the CED of ATPN on folders of image + `.pts`."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edge.errors import DatasetError
from edge.eval import metrics
from edge.eval.faces import FaceFinder, measure
from edge.eval.plot import draw_faces, write_ced
from edge.eval.report import write_csv, write_json
from edge.eval.datasets import FaceRecord, load_teacher_arrays

Row = Dict[str, Any]


WORST_FRACTION = 0.05  # the contact sheet shows this share of the faces, worst first


def evaluate(records: Sequence[FaceRecord], finder: FaceFinder) -> Tuple[List[Row], List[Optional[np.ndarray]]]:
    """One row per labelled face (how well the reported face overlaps it, the NME, inf when not found), and
    the predicted landmarks (None when not found)."""
    rows, predictions = [], []
    for record, aligned in measure(records, finder, "landmarks"):
        predictions.append(None if aligned is None else aligned.landmarks_px)
        row = {"image": os.path.basename(record.image_path), "found": aligned is not None,
               "match_iou": math.nan if aligned is None else aligned.match_iou,
               "nme": math.inf if aligned is None else float(metrics.nme(aligned.landmarks_px, record.landmarks)),
               "track_score": math.nan if aligned is None else aligned.track}
        if len(record.landmarks) == 68:
            regions = {} if aligned is None else metrics.nme_by_region(aligned.landmarks_px, record.landmarks)
            row.update({f"nme_{name}": float(regions[name]) if regions else math.inf for name in metrics.REGIONS_68})
        rows.append(row)
    return rows, predictions


def write_worst(path: Path, records: Sequence[FaceRecord], predictions: Sequence[Optional[np.ndarray]],
                errors: np.ndarray) -> Path:
    """The worst WORST_FRACTION of the faces (at least one) with labels and prediction: where to look first."""
    import cv2

    from edge.eval.faces import read_image

    worst = np.argsort(-np.nan_to_num(errors, posinf=1e9), kind="stable")[:max(1, round(WORST_FRACTION * len(errors)))]
    sheet = draw_faces([read_image(records[i].image_path) for i in worst], [records[i].landmarks for i in worst],
                       [predictions[i] for i in worst],
                       [f"{os.path.basename(records[i].image_path)[:16]} {100 * errors[i]:.1f}%" for i in worst])
    cv2.imwrite(str(path), sheet)
    return path


def region_means(rows: Sequence[Row]) -> Dict[str, float]:
    """Mean NME of each 68-point region over the faces that were found (the summary's by-region line)."""
    found = [r for r in rows if r["found"] and "nme_jaw" in r]
    return {name: float(np.mean([r[f"nme_{name}"] for r in found])) for name in metrics.REGIONS_68} if found else {}


def baseline_errors(npz_path: str, records: Sequence[FaceRecord]) -> Tuple[np.ndarray, Dict[str, float]]:
    """NME of another labeller (the teacher's 68 points) on the same faces, inf where it found none,
    and its mean NME per 68-point region over the faces it found."""
    arrays = load_teacher_arrays(npz_path)
    by_name = {os.path.basename(str(f)): i for i, f in enumerate(arrays["files"])}
    missing = [os.path.basename(r.image_path) for r in records if os.path.basename(r.image_path) not in by_name]
    if missing:
        raise DatasetError(f"{npz_path}: no labels for {len(missing)} of the images (e.g. {missing[0]}); "
                           "give the teacher file made from the same folder")
    rows = [by_name[os.path.basename(r.image_path)] for r in records]
    pred = np.where(arrays["ok"][rows, None, None], arrays["landmarks"][rows], np.nan)
    truth = np.stack([r.landmarks for r in records])
    found = arrays["ok"][rows]
    regions = {name: float(v[found].mean()) for name, v in metrics.nme_by_region(pred, truth).items()} \
        if found.any() and truth.shape[1] == 68 else {}
    return metrics.nme(pred, truth), regions


def run(images: str, records: Sequence[FaceRecord], finder: FaceFinder, out: Path, model_info: Dict[str, str],
        baseline: Optional[str] = None) -> Tuple[Dict[str, Any], List[Path]]:
    """Evaluate the faces of `images`, then write landmarks.csv, landmarks.json, ced.png and worst.png into `out`."""
    rows, predictions = evaluate(records, finder)
    errors = np.array([r["nme"] for r in rows])
    summary: Dict[str, Any] = {"command": "landmarks", "images": os.path.abspath(images), **model_info,
                               "boxes": finder.boxes, "passes": finder.stills.passes,
                               "refine_scale": finder.stills.refine_scale,
                               **metrics.summarize_nme(errors)}
    summary["detection_rate"] = summary["found"] / summary["faces"]
    summary["nme_by_region"] = region_means(rows)
    curves = [(_legend(f"ATPN, {finder.boxes} boxes", summary), *metrics.ced_curve(errors))]
    if baseline:
        base_errors, base_regions = baseline_errors(baseline, records)
        base = metrics.summarize_nme(base_errors)
        summary["baseline"] = {"labels": os.path.abspath(baseline), **base, "nme_by_region": base_regions}
        curves.append((_legend(f"baseline {Path(baseline).stem}", base), *metrics.ced_curve(base_errors)))
    title = f"CED on {'/'.join(Path(os.path.abspath(images)).parts[-2:])} ({summary['faces']} faces)"
    files = [write_csv(out / "landmarks.csv", rows), write_json(out / "landmarks.json", summary),
             Path(write_ced(str(out / "ced.png"), curves, title)), write_worst(out / "worst.png", records, predictions, errors)]
    return summary, files


def _legend(name: str, s: Dict[str, Any]) -> str:
    return f"{name}: NME {100 * s['nme_mean']:.2f}%, FR {100 * s['fr_10']:.1f}%, AUC {s['auc_10']:.3f}"
