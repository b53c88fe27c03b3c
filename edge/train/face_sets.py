"""Which faces training draws from: human-labelled HELEN (with the teacher's pose) and teacher-labelled UTKFace.

Teacher files that do not exist yet are skipped with a note, so training runs on HELEN alone
(pose head untrained) before `python -m edge.train.teacher` has been run.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

from edge.errors import DatasetError
from edge.train.config import DataConfig
from edge.eval.datasets import FaceRecord, load_teacher_arrays, read_pts_folder, read_teacher_npz

HOLDOUT_SEED = 20261126  # fixed: the held-out faces must not change between runs that are compared
UTKFACE_PAD = 0.5  # UTKFace faces fill their 200 px images: unpadded, every crop would show a black frame


@dataclass(frozen=True)
class FaceSet:
    """Faces of one kind: how often training draws them and how much their landmarks count."""

    name: str
    records: List[FaceRecord]
    share: float
    landmark_weight: float
    cache_images: bool
    edge_pad: float = 0.0  # pad images by repeating their edge, this fraction of their side (tight face crops)


def teacher_file(cfg: DataConfig, name: str) -> str:
    return os.path.join(cfg.teacher_dir, f"{name}.npz")


def human_with_teacher_pose(folder: str, teacher_npz: str) -> List[FaceRecord]:
    """Human landmarks of a .pts folder; pose from the teacher where it found the face, else None."""
    records = read_pts_folder(folder)
    if not os.path.isfile(teacher_npz):
        print(f"[data] {teacher_npz} missing: {folder} has no pose labels", flush=True)
        return records
    arrays = load_teacher_arrays(teacher_npz)
    pose = {str(f): p for f, p, ok in zip(arrays["files"], arrays["pose"], arrays["ok"]) if ok}
    return [FaceRecord(r.image_path, r.landmarks, pose.get(os.path.relpath(r.image_path, folder))) for r in records]


def split_holdout(records: List[FaceRecord], holdout: int) -> Tuple[List[FaceRecord], List[FaceRecord]]:
    """(train, held out): `holdout` faces drawn with a fixed seed, the same on every run and machine."""
    if holdout >= len(records):
        raise DatasetError(f"data.holdout is {holdout} but HELEN train has {len(records)} faces; hold out fewer")
    order = np.random.default_rng(HOLDOUT_SEED).permutation(len(records))
    held = set(order[:holdout].tolist())
    return ([r for i, r in enumerate(records) if i not in held], [r for i, r in enumerate(records) if i in held])


def helen_train(cfg: DataConfig) -> Tuple[List[FaceRecord], List[FaceRecord]]:
    """HELEN train's faces split into (trained on, held out for validation)."""
    records = human_with_teacher_pose(cfg.helen_train, teacher_file(cfg, "helen_train"))
    return split_holdout(records, cfg.holdout) if cfg.holdout else (records, [])


def training_sources(cfg: DataConfig) -> List[FaceSet]:
    """HELEN train always; UTKFace when its teacher labels exist (then HELEN gets `helen_share`)."""
    helen = helen_train(cfg)[0]
    utk_npz = teacher_file(cfg, "utkface")
    if not os.path.isfile(utk_npz):
        print(f"[data] {utk_npz} missing: training on HELEN only", flush=True)
        return [FaceSet("helen", helen, 1.0, 1.0, cfg.cache_helen)]
    utk = read_teacher_npz(utk_npz, image_root=cfg.utkface)
    return [FaceSet("helen", helen, cfg.helen_share, 1.0, cfg.cache_helen),
            FaceSet("utkface", utk, 1.0 - cfg.helen_share, cfg.teacher_landmark_weight, False, edge_pad=UTKFACE_PAD)]


def validation_records(cfg: DataConfig) -> List[FaceRecord]:
    """The held-out HELEN-train faces with data.holdout, else HELEN test."""
    if cfg.holdout:
        return helen_train(cfg)[1]
    return human_with_teacher_pose(cfg.helen_test, teacher_file(cfg, "helen_test"))
