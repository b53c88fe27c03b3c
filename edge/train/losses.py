"""The three heads' losses and their weighted sum.

- landmarks: Wing loss in crop units (log-like for small errors so the last pixels still pull),
  weighted per sample (0 on negatives, lower for teacher labels) and per point (`loss.inner_face`);
- pose: L1 in units of 90 degrees where a pose label exists;
- track: binary cross-entropy on the track probability.
"""
from __future__ import annotations

import math
from typing import Dict, Tuple

import torch
import torch.nn.functional as F

from edge.model.atpn import POSE_SCALE_DEG
from edge.train.config import LossConfig


def wing(error: torch.Tensor, w: float, eps: float) -> torch.Tensor:
    """Wing loss of absolute errors (Feng et al. 2018): w*ln(1+|x|/eps) below w, linear above."""
    x = error.abs()
    c = w - w * math.log(1.0 + w / eps)
    return torch.where(x < w, w * torch.log1p(x / eps), x - c)


INNER_FACE_68 = slice(27, 68)  # nose, eyes, mouth of the 68-point layout (jaw 0-16 and brows 17-26 before them)


def point_weights(points: int, inner_face: float) -> torch.Tensor:
    """[N] weights of the points in the landmark loss, mean 1: the inner face `inner_face` times the rest (68 points;
    any other layout counts all points alike)."""
    weights = torch.ones(points)
    if points == 68:
        weights[INNER_FACE_68] = inner_face
    return weights * (points / weights.sum())


def _masked_mean(per_sample: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return (per_sample * weight).sum() / weight.sum().clamp(min=1.0)


def total_loss(out: Dict[str, torch.Tensor], batch: Dict[str, torch.Tensor],
               cfg: LossConfig) -> Tuple[torch.Tensor, Dict[str, float]]:
    """Weighted sum of the three losses, and each loss as a float for the log."""
    per_point = wing(out["landmarks"] - batch["landmarks"], cfg.wing_w, cfg.wing_eps).mean(dim=2)
    lm = (per_point * point_weights(per_point.shape[1], cfg.inner_face).to(per_point.device)).mean(dim=1)
    lm = _masked_mean(lm, batch["landmark_weight"])
    pose = ((out["pose"] - batch["pose"]).abs() / POSE_SCALE_DEG).mean(dim=1)
    pose = _masked_mean(pose, batch["pose_mask"])
    track = F.binary_cross_entropy(out["track"].reshape(-1).clamp(1e-6, 1 - 1e-6), batch["track"])
    loss = cfg.landmark * lm + cfg.pose * pose + cfg.track * track
    parts = {"loss": loss, "landmark": lm, "pose": pose, "track": track}
    return loss, {k: float(v.detach()) for k, v in parts.items()}
