"""The three heads' losses and their weighted sum.

- landmarks: Wing loss in crop units (log-like for small errors so the last pixels still pull),
  weighted per sample (0 on negatives, lower for teacher labels);
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


def _masked_mean(per_sample: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return (per_sample * weight).sum() / weight.sum().clamp(min=1.0)


def total_loss(out: Dict[str, torch.Tensor], batch: Dict[str, torch.Tensor],
               cfg: LossConfig) -> Tuple[torch.Tensor, Dict[str, float]]:
    """Weighted sum of the three losses, and each loss as a float for the log."""
    lm = wing(out["landmarks"] - batch["landmarks"], cfg.wing_w, cfg.wing_eps).mean(dim=(1, 2))
    lm = _masked_mean(lm, batch["landmark_weight"])
    pose = ((out["pose"] - batch["pose"]).abs() / POSE_SCALE_DEG).mean(dim=1)
    pose = _masked_mean(pose, batch["pose_mask"])
    track = F.binary_cross_entropy(out["track"].reshape(-1).clamp(1e-6, 1 - 1e-6), batch["track"])
    loss = cfg.landmark * lm + cfg.pose * pose + cfg.track * track
    parts = {"loss": loss, "landmark": lm, "pose": pose, "track": track}
    return loss, {k: float(v.detach()) for k, v in parts.items()}
