"""Readers for face-landmark datasets: one record type, whatever the file format.

Formats: 300-W `.pts` (68 points), WFLW list files (98 points), 300W-LP / AFLW2000 `.mat` (68 points
and pose), folders of image + label file of the same stem (the HELEN / 300-W layout), and the teacher
labels that edge.train.teacher writes (the one writer of that format is here too, next to its reader).

Pure numpy so MediaPipe's numpy<2 environment (the teacher) can use it; scipy only for `.mat`,
imported when a `.mat` is read. Coordinates are returned as the files store them (pixels).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edge.errors import DatasetError
from edge.fileio import ensure_parent

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
WFLW_POINTS = 98
WFLW_FIELDS = 2 * WFLW_POINTS + 4 + 6 + 1  # points, box, 6 attribute flags, image path
TEACHER_KEYS = ("files", "landmarks", "pose", "ok")


@dataclass(frozen=True)
class FaceRecord:
    """One labelled face.

    landmarks: [N,2] float32 image pixels. pose_deg: (yaw, pitch, roll) float32 degrees or None, in
    the project's convention: yaw > 0 turns toward the image's right, pitch > 0 looks up, roll is the
    eye-line angle from the subject's right eye to the left eye with y down (CropBox.angle_deg).
    """

    image_path: str
    landmarks: np.ndarray
    pose_deg: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        lm = self.landmarks
        if not (isinstance(lm, np.ndarray) and lm.dtype == np.float32 and lm.ndim == 2 and lm.shape[1] == 2):
            raise ValueError(f"landmarks must be a float32 array of shape (N, 2), got {_describe(lm)}")
        pose = self.pose_deg
        if pose is not None and not (isinstance(pose, np.ndarray) and pose.dtype == np.float32 and pose.shape == (3,)):
            raise ValueError(f"pose_deg must be None or a float32 array of shape (3,), got {_describe(pose)}")


PTS_ORIGIN = 1.0  # 300-W `.pts` count pixels from 1 (MATLAB), as menpo and the 300-W tools read them


def read_pts(path: str) -> np.ndarray:
    """A 300-W `.pts` file -> [N,2] float32 pixel centres from 0 (OpenCV's frame, which every warp here
    uses): `version: 1`, `n_points: N`, `{`, N lines `x y`, `}`. Read 1-based, a label sits 1 px right of
    and below its point; mirror augmentation then moves it 1 px left instead, and a model trained on both
    learns half of it: ATPN's mean error on HELEN was 1.3 px to the left until this was fixed."""
    lines = _read_lines(path)
    n_points = None
    for i, (lineno, text) in enumerate(lines):
        key, _, value = text.partition(":")
        if key.strip() == "n_points":
            n_points = _parse_int(value, path, lineno)
        elif text == "{":
            break
    else:
        raise DatasetError(f"{path}: no '{{' line opens the points; a .pts file is `version: 1`, `n_points: N`, `{{`, N lines `x y`, `}}`")
    if n_points is None:
        raise DatasetError(f"{path}: no `n_points: N` line before '{{'; add it to the header")
    body = lines[i + 1:]
    if len(body) != n_points + 1 or body[-1][1] != "}":
        raise DatasetError(f"{path}:{lines[i][0]}: expected {n_points} lines `x y` then '}}', got {len(body)} lines after '{{'")
    return np.array([_parse_floats(text, 2, path, lineno) for lineno, text in body[:-1]], dtype=np.float32) - PTS_ORIGIN


def write_pts(path: str, points: np.ndarray) -> None:
    """[N,2] 0-based pixel centres -> a 300-W `.pts` file that read_pts (and the 300-W tools) read back."""
    body = "\n".join(f"{x + PTS_ORIGIN:.3f} {y + PTS_ORIGIN:.3f}" for x, y in np.asarray(points, dtype=np.float64))
    with open(path, "w") as f:
        f.write(f"version: 1\nn_points: {len(points)}\n{{\n{body}\n}}\n")


def read_wflw_list(list_file: str, image_root: str) -> List[FaceRecord]:
    """A WFLW annotation list: per line 196 coordinates, a box, 6 attribute flags, the image path.

    Box and attributes are dropped: the crop comes from the landmarks (edge.model.crop).
    """
    records = []
    for lineno, text in _read_lines(list_file):
        fields = text.split()
        if len(fields) != WFLW_FIELDS:
            raise DatasetError(f"{list_file}:{lineno}: expected {WFLW_FIELDS} fields (196 coordinates, 4 box, "
                               f"6 attributes, image path), got {len(fields)}")
        coords = _parse_floats(" ".join(fields[:2 * WFLW_POINTS]), 2 * WFLW_POINTS, list_file, lineno)
        records.append(FaceRecord(os.path.join(image_root, fields[-1]),
                                  np.array(coords, dtype=np.float32).reshape(WFLW_POINTS, 2)))
    if not records:
        raise DatasetError(f"{list_file}: no annotation lines; is this a WFLW list_98pt_*.txt file?")
    return records


def read_pose_mat(mat_path: str, image_path: Optional[str] = None) -> FaceRecord:
    """A 300W-LP / AFLW2000 `.mat`: 68 points (`pt3d_68` rows x, y, else `pt2d`) and `Pose_Para`.

    `Pose_Para[:3]` is (pitch, yaw, roll) in radians with yaw > 0 turning toward the image's LEFT
    (the convention Hopenet and FSA-Net read); yaw is negated into the project's convention.
    The image defaults to the `.jpg` of the same stem.
    """
    from scipy.io import loadmat  # only .mat readers need scipy
    from scipy.io.matlab import MatReadError

    try:
        mat = loadmat(mat_path)
    except (OSError, ValueError, MatReadError) as exc:
        raise DatasetError(f"{mat_path}: cannot read as a MATLAB file ({exc})") from exc
    points = _mat_points(mat, mat_path)
    if "Pose_Para" not in mat or np.asarray(mat["Pose_Para"]).size < 3:
        raise DatasetError(f"{mat_path}: no `Pose_Para` (pitch, yaw, roll, ...); is this a 300W-LP / AFLW2000 file?")
    pitch, yaw, roll = (math.degrees(float(a)) for a in np.asarray(mat["Pose_Para"], dtype=np.float64).reshape(-1)[:3])
    pose = np.array([-yaw, pitch, roll], dtype=np.float32)
    return FaceRecord(image_path or os.path.splitext(mat_path)[0] + ".jpg", points, pose)


def read_pts_folder(folder: str) -> List[FaceRecord]:
    """Every `.pts` in a folder with the image of the same stem (HELEN, LFPW, AFW, IBUG layout)."""
    return _read_paired(folder, ".pts", lambda label, image: FaceRecord(image, read_pts(label)))


def read_mat_folder(folder: str) -> List[FaceRecord]:
    """Every `.mat` in a folder with the image of the same stem (300W-LP subsets, AFLW2000)."""
    return _read_paired(folder, ".mat", read_pose_mat)


def list_images(folder: str) -> List[str]:
    """Image file names in a folder (not recursive), sorted, relative to it."""
    if not os.path.isdir(folder):
        raise DatasetError(f"{folder}: not a folder of images; check the dataset path")
    return sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))


def write_teacher_npz(path: str, root: str, files: Sequence[str], landmarks: np.ndarray, pose: np.ndarray,
                      ok: np.ndarray, **extra: np.ndarray) -> None:
    """Teacher labels: files (relative to `root`), landmarks [M,68,2] px, pose [M,3] deg, ok [M] bool.

    Rows with ok=False (no face found) hold NaN. `extra` arrays (e.g. the raw mesh) ride along.
    """
    m = len(files)
    if landmarks.shape[:1] != (m,) or pose.shape != (m, 3) or ok.shape != (m,):
        raise ValueError(f"teacher arrays disagree on the face count {m}: landmarks {landmarks.shape}, "
                         f"pose {pose.shape}, ok {ok.shape}")
    ensure_parent(path)
    np.savez(path, root=np.array(os.path.abspath(root)), files=np.array(files), landmarks=landmarks.astype(np.float32),
             pose=pose.astype(np.float32), ok=ok.astype(bool), **extra)


def read_teacher_npz(path: str, image_root: Optional[str] = None) -> List[FaceRecord]:
    """The faces the teacher found (ok=True) as records; images under `image_root`, else the stored root."""
    arrays = load_teacher_arrays(path)
    root = image_root if image_root is not None else str(arrays["root"])
    return [FaceRecord(os.path.join(root, str(f)), lm, p)
            for f, lm, p, ok in zip(arrays["files"], arrays["landmarks"], arrays["pose"], arrays["ok"]) if ok]


def load_teacher_arrays(path: str) -> Dict[str, np.ndarray]:
    """The teacher npz as checked arrays (for code that wants whole arrays rather than records)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read teacher labels ({exc}); rerun `python -m edge.train.teacher`") from exc
    missing = [k for k in TEACHER_KEYS + ("root",) if k not in arrays]
    if missing:
        raise DatasetError(f"{path}: teacher labels lack {missing}; rerun `python -m edge.train.teacher`")
    m = len(arrays["files"])
    lm, pose, ok = arrays["landmarks"], arrays["pose"], arrays["ok"]
    if lm.shape[:1] != (m,) or lm.shape[2:] != (2,) or pose.shape != (m, 3) or ok.shape != (m,):
        raise DatasetError(f"{path}: arrays disagree: files {m}, landmarks {lm.shape}, pose {pose.shape}, ok {ok.shape}")
    arrays["landmarks"] = lm.astype(np.float32)
    arrays["pose"] = pose.astype(np.float32)
    arrays["ok"] = ok.astype(bool)
    return arrays


def _read_paired(folder: str, label_ext: str, read: Callable[[str, str], FaceRecord]) -> List[FaceRecord]:
    if not os.path.isdir(folder):
        raise DatasetError(f"{folder}: not a folder; give a folder of images with {label_ext} files of the same stem")
    labels = sorted(f for f in os.listdir(folder) if f.endswith(label_ext))
    if not labels:
        raise DatasetError(f"{folder}: no {label_ext} files; give a folder of images with {label_ext} files of the same stem")
    images = {os.path.splitext(f)[0]: f for f in list_images(folder)}
    records = []
    for label in labels:
        stem = os.path.splitext(label)[0]
        if stem not in images:
            raise DatasetError(f"{os.path.join(folder, label)}: no image of the same stem ({'/'.join(IMAGE_EXTENSIONS)})")
        records.append(read(os.path.join(folder, label), os.path.join(folder, images[stem])))
    return records


def _mat_points(mat: Dict[str, np.ndarray], path: str) -> np.ndarray:
    for key in ("pt3d_68", "pt2d"):
        pts = np.asarray(mat.get(key, np.zeros((0, 0))), dtype=np.float64)
        if pts.ndim == 2 and pts.shape[0] in (2, 3) and pts.shape[1] == 68:
            return pts[:2].T.astype(np.float32)
    shapes = {k: np.shape(mat[k]) for k in ("pt3d_68", "pt2d") if k in mat}
    raise DatasetError(f"{path}: no 68-point landmarks (`pt3d_68` 3x68 or `pt2d` 2x68), found {shapes or 'neither'}")


def _read_lines(path: str) -> List[Tuple[int, str]]:
    """(1-based line number, stripped text) for every non-empty line."""
    try:
        with open(path, encoding="utf-8") as f:
            return [(n, t.strip()) for n, t in enumerate(f, 1) if t.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from exc


def _parse_floats(text: str, count: int, path: str, lineno: int) -> List[float]:
    try:
        values = [float(v) for v in text.split()]
    except ValueError:
        values = []
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise DatasetError(f"{path}:{lineno}: expected {count} finite numbers, got {text[:60]!r}")
    return values


def _parse_int(text: str, path: str, lineno: int) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise DatasetError(f"{path}:{lineno}: expected an integer, got {text.strip()!r}") from None


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {value.shape}"
    return type(value).__name__
