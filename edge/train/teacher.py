"""Teacher labels where humans gave none: MediaPipe's face mesh, mapped to 68 points, plus head pose.

MediaPipe needs numpy<2, so this runs in its own environment:
    ../shared/peers/setup_peer_venv.sh /work/teacher-venv && /work/teacher-venv/bin/pip install tqdm==4.70.1
    nice -n 10 /work/teacher-venv/bin/python -m edge.train.teacher --data ../shared/data --out cache/teacher
It imports only numpy, cv2, mediapipe, tqdm and numpy-only modules of edge/.

Writes OUT/{set}.npz (files, landmarks [M,68,2] px, pose [M,3] deg, ok [M], plus the raw mesh so a
refit needs no MediaPipe rerun; see edge.eval.datasets) and OUT/report.json: the NME of the mapped
teacher against the human labels of HELEN (the baseline ATPN must beat) and a flip check of the pose
signs. The mesh -> 68 map and mean face are fitted on HELEN train into edge/train/teacher_fit.npz.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from edge.errors import EdgeError
from edge.eval.metrics import nme, summarize_nme
from edge.model.crop import eye_centers
from edge.train import teacher_geometry as geo
from edge.eval.datasets import list_images, load_teacher_arrays, read_pts, write_teacher_npz

SETS = {"helen_train": "helen/train", "helen_test": "helen/test", "utkface": "utkface"}
PAD_FRACTION = 0.25  # faces filling the whole image (UTKFace) escape the detector until given a border
NEIGHBOURS = (1, 3, 6, 10, 16, 24, 32)
RIDGES = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)


class MeshRunner:
    """MediaPipe's legacy FaceMesh on stills: the 468-point mesh of the most central face, in pixels."""

    def __init__(self) -> None:
        import mediapipe as mp  # only this class needs MediaPipe

        self._mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=3, refine_landmarks=False)

    def __call__(self, bgr: np.ndarray) -> Optional[np.ndarray]:
        mesh = self._central_mesh(bgr)
        if mesh is None:
            pad = int(PAD_FRACTION * max(bgr.shape[:2]))
            mesh = self._central_mesh(cv2.copyMakeBorder(bgr, pad, pad, pad, pad, cv2.BORDER_CONSTANT))
            if mesh is not None:
                mesh[:, :2] -= pad
        return mesh

    def _central_mesh(self, bgr: np.ndarray) -> Optional[np.ndarray]:
        h, w = bgr.shape[:2]
        faces = self._mesh.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).multi_face_landmarks
        if not faces:
            return None
        meshes = [np.array([(p.x * w, p.y * h, p.z * w) for p in f.landmark]) for f in faces]
        return min(meshes, key=lambda m: np.linalg.norm(m[:, :2].mean(0) - (w / 2, h / 2)))


def run_meshes(runner: MeshRunner, folder: str, files: List[str], desc: str, flip: bool = False) -> np.ndarray:
    """[M,468,3] px for every image (NaN where no face was found); `flip` mirrors each image first."""
    out = np.full((len(files), geo.MESH_POINTS, 3), np.nan, dtype=np.float32)
    for i, name in enumerate(tqdm(files, desc=desc, unit="img", mininterval=2.0)):
        bgr = cv2.imread(os.path.join(folder, name))
        if bgr is None:
            raise EdgeError(f"{os.path.join(folder, name)}: not a readable image; remove it or fix the dataset")
        mesh = runner(bgr[:, ::-1].copy() if flip else bgr)
        if mesh is not None:
            out[i] = mesh
    return out


def cached_meshes(runner: MeshRunner, name: str, folder: str, out_dir: str, limit: int, remesh: bool) -> Tuple[List[str], np.ndarray]:
    """The set's meshes, from OUT/{name}.npz when it holds them for the same files, else from MediaPipe."""
    files = list_images(folder)[:limit or None]
    path = os.path.join(out_dir, name + ".npz")
    if not remesh and os.path.exists(path):
        old = load_teacher_arrays(path)
        if "mesh" in old and list(old["files"]) == files:
            return files, old["mesh"]
    return files, run_meshes(runner, folder, files, name)


def human_labels(folder: str, files: List[str]) -> Optional[np.ndarray]:
    """[M,68,2] from the `.pts` of each image, or None for an unlabelled set."""
    stems = [os.path.join(folder, os.path.splitext(f)[0] + ".pts") for f in files]
    if not all(os.path.exists(p) for p in stems):
        return None
    return np.stack([read_pts(p) for p in stems]).astype(np.float64)


def fit_teacher(meshes: np.ndarray, labels: np.ndarray) -> Tuple[geo.TeacherFit, float]:
    """Mean face and mesh -> 68 map from the faces of HELEN train that the mesh found."""
    found = np.isfinite(meshes).all(axis=(1, 2))
    mean_face = geo.fit_mean_face(meshes[found].astype(np.float64))
    indices, weights, cv_nme = geo.fit_mapping(meshes[found].astype(np.float64), labels[found], NEIGHBOURS, RIDGES)
    return geo.TeacherFit(mean_face, geo.pose_points(mean_face), indices, weights), cv_nme


def eye_line_deg(landmarks: np.ndarray) -> np.ndarray:
    """Angle of the eye line of each 68-point face, as CropBox.angle_deg measures it."""
    out = np.full(len(landmarks), np.nan)
    for i, lm in enumerate(landmarks):
        right, left = eye_centers(lm)
        out[i] = np.degrees(np.arctan2(left[1] - right[1], left[0] - right[0]))
    return out


def landmark_report(pred: np.ndarray, labels: np.ndarray, pose: np.ndarray) -> Dict[str, float]:
    """NME of the mapped teacher against human labels, and how its roll agrees with their eye line."""
    report = summarize_nme(nme(pred, labels))
    roll_error = np.abs(pose[:, 2] - eye_line_deg(labels))
    report["roll_vs_label_eye_line_mae_deg"] = float(np.nanmean(roll_error))
    return report


def flip_report(runner: MeshRunner, fit: geo.TeacherFit, folder: str, files: List[str], pose: np.ndarray) -> Dict[str, float]:
    """Mirror images: yaw and roll must change sign, pitch must not."""
    flipped = geo.head_pose(run_meshes(runner, folder, files, "flip check", flip=True).astype(np.float64), fit)
    both = np.isfinite(pose).all(1) & np.isfinite(flipped).all(1)
    a, b = pose[both], flipped[both]
    turned = np.abs(a[:, 0]) > 5
    tilted = np.abs(a[:, 2]) > 5
    return {
        "faces": int(both.sum()),
        "yaw_plus_flipped_yaw_mae_deg": float(np.abs(a[:, 0] + b[:, 0]).mean()),
        "roll_plus_flipped_roll_mae_deg": float(np.abs(a[:, 2] + b[:, 2]).mean()),
        "pitch_minus_flipped_pitch_mae_deg": float(np.abs(a[:, 1] - b[:, 1]).mean()),
        "yaw_sign_flips_when_abs_over_5": float((np.sign(a[turned, 0]) != np.sign(b[turned, 0])).mean()),
        "roll_sign_flips_when_abs_over_5": float((np.sign(a[tilted, 2]) != np.sign(b[tilted, 2])).mean()),
    }


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data", help="folder holding helen/train, helen/test, utkface")
    ap.add_argument("--out", default="cache/teacher", help="where the label files and report.json go")
    ap.add_argument("--sets", nargs="+", choices=sorted(SETS), default=sorted(SETS))
    ap.add_argument("--fit", default=geo.DEFAULT_FIT, help="mean face + mesh->68 map (fitted on HELEN train)")
    ap.add_argument("--refit", action="store_true", help="refit --fit on HELEN train even if it exists")
    ap.add_argument("--remesh", action="store_true", help="rerun MediaPipe even where OUT holds meshes")
    ap.add_argument("--limit", type=int, default=0, help="first N images per set only (quick tries)")
    ap.add_argument("--flip-check", type=int, default=100, help="HELEN test images mirrored to check pose signs")
    args = ap.parse_args(argv)
    try:
        run(args)
    except EdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def run(args: argparse.Namespace) -> None:
    runner = MeshRunner()
    report_path = os.path.join(args.out, "report.json")
    report = {}
    if os.path.exists(report_path):
        with open(report_path) as f:
            report = json.load(f)
    meshes = {name: cached_meshes(runner, name, os.path.join(args.data, SETS[name]), args.out, args.limit, args.remesh)
              for name in args.sets}
    if args.refit or not os.path.exists(args.fit):
        train_dir = os.path.join(args.data, SETS["helen_train"])
        files, train = meshes.get("helen_train") or cached_meshes(runner, "helen_train", train_dir, args.out,
                                                                    args.limit, args.remesh)
        fit, cv_nme = fit_teacher(train, human_labels(train_dir, files))
        fit.save(args.fit)
        report["fit"] = {"path": os.path.relpath(args.fit), "helen_train_faces": len(files), "cv_nme": cv_nme,
                         "mean_neighbours": float((fit.weights != 0).sum(1).mean())}
    fit = geo.TeacherFit.load(args.fit)
    for name, (files, mesh) in meshes.items():
        folder = os.path.join(args.data, SETS[name])
        mesh64 = mesh.astype(np.float64)
        landmarks = geo.apply_mapping(mesh64, fit.indices, fit.weights)
        pose = geo.head_pose(mesh64, fit)
        ok = np.isfinite(landmarks).all(axis=(1, 2)) & np.isfinite(pose).all(1)
        write_teacher_npz(os.path.join(args.out, name + ".npz"), folder, files, landmarks, pose, ok, mesh=mesh)
        entry = {"images": len(files), "found": int(ok.sum()), "pose_abs_mean_deg": np.nanmean(np.abs(pose), 0).tolist()}
        labels = human_labels(folder, files)
        if labels is not None:
            entry.update(landmark_report(landmarks, labels, pose))
        if name == "helen_test" and args.flip_check:
            n = args.flip_check
            entry["flip_check"] = flip_report(runner, fit, folder, files[:n], pose[:n])
        report[name] = entry
        print(name, json.dumps(entry))
    os.makedirs(args.out, exist_ok=True)
    with open(report_path, "w") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
