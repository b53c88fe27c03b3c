"""Checkpoints written atomically: a killed run never leaves a half-written file.

A checkpoint holds `spec` (ModelSpec JSON) and `model` (state_dict) — what
edge.model.atpn.load_checkpoint reads — plus optimizer, epoch, step and metrics for resuming.
The exported model keeps only spec + model (what the repository ships).
"""
from __future__ import annotations

import os
from dataclasses import replace
from typing import Any, Dict

import torch

from edge.errors import ModelError
from edge.fileio import atomic_path
from edge.model.atpn import ATPN
from edge.model.spec import ModelSpec
from edge.train.widen import widen_state


def save_atomic(obj: Dict[str, Any], path: str) -> None:
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(obj, tmp)


def model_state(model: ATPN) -> Dict[str, torch.Tensor]:
    """The state_dict on the CPU in plain contiguous layout (training runs channels-last, maybe on a GPU)."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def export_model(model: ATPN, path: str) -> None:
    """spec + weights only: the small file the repository ships and load_checkpoint reads."""
    save_atomic({"spec": model.spec.to_json(), "model": model_state(model)}, path)


def _load(path: str, what: str) -> Dict[str, Any]:
    if not os.path.isfile(path):
        raise ModelError(f"{path}: no such file; give {what}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise ModelError(f"{path}: not a checkpoint ({type(exc).__name__}: {exc}); give {what}") from exc
    if not isinstance(ckpt, dict) or "spec" not in ckpt or "model" not in ckpt:
        raise ModelError(f"{path}: holds no spec + model; give {what}")
    return ckpt


def load_weights(path: str, model: ATPN) -> Dict[str, torch.Tensor]:
    """The tensors of an export or checkpoint that fit `model`, refused if it was trained for another
    ModelSpec. Allowed: another landmark head (the layers both have are taken, the new head starts fresh),
    another crop scale and input size (fine-tuning adapts; every convolution fits any size, and a layer tied
    to the old size, like the regression head's global 7x7, starts fresh), and a larger width (widen.py
    grows the trained network without changing its outputs)."""
    ckpt = _load(path, "weights written by edge.train (e.g. weights/atpn68.pt)")
    spec, trained = model.spec, ModelSpec.from_json(ckpt["spec"])
    if trained.width > spec.width:
        raise ModelError(f"{path}: trained at width {trained.width:g}, wider than {spec.width:g}; a network can be "
                         "widened, not narrowed: start from scratch instead")
    adapted = replace(trained.sized(spec.input_size), landmark_head=spec.landmark_head, crop_scale=spec.crop_scale,
                      width=spec.width)
    if adapted != spec:
        raise ModelError(f"{path}: trained for a different ModelSpec ({ckpt['spec']}); start from scratch instead")
    state = widen_state(ckpt["model"], trained, model) if trained.width < spec.width else ckpt["model"]
    into = model.state_dict()
    return {k: v for k, v in state.items() if k in into and into[k].shape == v.shape}


def load_training_state(path: str) -> Dict[str, Any]:
    ckpt = _load(path, "a last.pt written by edge.train to resume from")
    missing = [k for k in ("spec", "model", "optimizer", "epoch", "step") if k not in ckpt]
    if missing:
        raise ModelError(f"{path}: lacks {missing}; resume needs a last.pt written by edge.train, not an export")
    return ckpt
