"""The per-epoch check on held-out faces, with the crop the tracker would place from the true landmarks.

NME is inter-ocular (edge.eval.metrics), pose is compared with the teacher where it has a label,
and the track head must score the true crop above 0.5 and a crop drifted by 0.6 side below it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List

import cv2
import numpy as np
import torch

from edge.eval.metrics import nme, pose_mae
from edge.model.atpn import ATPN
from edge.model.crop import CropBox, crop_from_landmarks, landmarks_to_frame, pose_to_frame, warp_crops
from edge.eval.datasets import FaceRecord

DRIFT = 0.6  # the negative check crop: shifted sideways by this fraction of its side


@dataclass(frozen=True)
class ValidationSet:
    crops: np.ndarray  # [N,3,S,S] true-landmark crops
    drifted: np.ndarray  # [N,3,S,S] the same crops shifted off the face
    matrices: np.ndarray  # [N,2,3]
    angles: np.ndarray  # [N] crop angles (deg)
    truth: np.ndarray  # [N,K,2] image pixels
    pose: np.ndarray  # [N,3] teacher pose (deg), NaN where the teacher found no face


def validation_set(records: List[FaceRecord], spec) -> ValidationSet:
    crops, drifted, matrices, angles = [], [], [], []
    for rec in records:
        image = cv2.imread(rec.image_path, cv2.IMREAD_COLOR)
        box = crop_from_landmarks(rec.landmarks, spec.crop_scale)
        off = CropBox(box.cx + DRIFT * box.size, box.cy, box.size, box.angle_deg)
        batch, m = warp_crops(image, [box, off], spec)
        crops.append(batch[0])
        drifted.append(batch[1])
        matrices.append(m[0])
        angles.append(box.angle_deg)
    nan_pose = np.full(3, np.nan, np.float32)
    return ValidationSet(np.stack(crops), np.stack(drifted), np.stack(matrices), np.array(angles),
                         np.stack([r.landmarks for r in records]),
                         np.stack([nan_pose if r.pose_deg is None else r.pose_deg for r in records]))


def _predict(model: ATPN, crops: np.ndarray, batch: int) -> Dict[str, np.ndarray]:
    outs: Dict[str, List[np.ndarray]] = {"landmarks": [], "pose": [], "track": []}
    device = next(model.parameters()).device
    for i in range(0, len(crops), batch):
        x = torch.from_numpy(crops[i:i + batch]).to(device).contiguous(memory_format=torch.channels_last)
        out = model(x)
        for k in outs:
            outs[k].append(out[k].cpu().numpy())
    return {k: np.concatenate(v) for k, v in outs.items()}


@torch.no_grad()
def validate(model: ATPN, val: ValidationSet, batch: int = 64) -> Dict[str, float]:
    was_training = model.training
    model.eval()
    pos = _predict(model, val.crops, batch)
    neg = _predict(model, val.drifted, batch)
    model.train(was_training)
    pred = landmarks_to_frame(pos["landmarks"], val.matrices, model.spec.input_size)
    metrics = {"nme": float(nme(pred, val.truth).mean()),
               "track_pos": float(pos["track"].mean()), "track_neg": float(neg["track"].mean()),
               "track_acc": float(((pos["track"] > 0.5).mean() + (neg["track"] <= 0.5).mean()) / 2)}
    has_pose = ~np.isnan(val.pose).any(axis=1)
    if has_pose.any():
        pose = pose_to_frame(pos["pose"][has_pose], val.angles[has_pose])
        metrics.update({f"pose_{k}": v for k, v in pose_mae(pose, val.pose[has_pose]).items()})
    return metrics
