"""Grow a trained ATPN to a larger `width` without changing what it computes, so fine-tuning starts from
the trained model's accuracy instead of from scratch (the aim of Net2Net, by zero-initialised growth).

Every old channel keeps its weights at the front of its layer; a new channel gets the fresh network's
random weights in, and its weights out to old channels are zero. Old channels therefore compute exactly
what they did, the outputs are unchanged, and the new channels start to matter as training moves those
zeros. Three inputs are concatenations (the fusion's shallow features + heatmap, the task trunk's fused +
deep features, the regression head's deep + shortcut features): their old channels are placed part by part.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Tuple

import torch

from edge.model.atpn import ATPN, BASE_CHANNELS, channels
from edge.model.spec import ModelSpec

Parts = List[Tuple[int, int]]  # (old size, new size) of each concatenated block of one tensor dimension


def _concatenated_inputs(old: ModelSpec, new: ModelSpec) -> Dict[Tuple[str, int], Parts]:
    """(parameter-name prefix, dimension) -> its blocks, for the layers that read a concatenation."""
    def part(*names: str) -> Parts:
        return [(channels(BASE_CHANNELS[n], old.width), channels(BASE_CHANNELS[n], new.width)) if n else (1, 1)
                for n in names]
    shallow_and_heatmap = part("shallow", "")
    return {("fusion.0.0.", 0): shallow_and_heatmap,  # the depthwise conv and its batch norm, per channel
            ("fusion.0.1.0.weight", 1): shallow_and_heatmap,
            ("task_trunk.0.weight", 1): part("fusion", "deep"),
            ("landmark_head.0.0.weight", 1): part("deep", "shortcut")}  # the regression head


def _old_positions(name: str, dim: int, old_size: int, new_size: int,
                   concatenated: Mapping[Tuple[str, int], Parts]) -> torch.Tensor:
    """Where each of a dimension's old channels sits in the widened tensor."""
    parts = next((p for (prefix, d), p in concatenated.items() if d == dim and name.startswith(prefix)),
                 [(old_size, new_size)])
    positions, start = [], 0
    for old_n, new_n in parts:
        positions.append(torch.arange(start, start + old_n))
        start += new_n
    return torch.cat(positions)


def widen_state(old_state: Mapping[str, torch.Tensor], old_spec: ModelSpec,
                new_model: ATPN) -> Dict[str, torch.Tensor]:
    """`old_state` (trained at old_spec.width) grown to the shapes of `new_model`, whose own random
    initialisation fills the new channels; only the tensors both models have are returned."""
    concatenated = _concatenated_inputs(old_spec, new_model.spec)
    grown: Dict[str, torch.Tensor] = {}
    for name, fresh in new_model.state_dict().items():
        if name not in old_state:
            continue
        old = old_state[name]
        if old.shape == fresh.shape:
            grown[name] = old
            continue
        out = fresh.detach().clone()
        rows = _old_positions(name, 0, old.shape[0], out.shape[0], concatenated)
        if old.dim() >= 2 and old.shape[1] != out.shape[1]:
            cols = _old_positions(name, 1, old.shape[1], out.shape[1], concatenated)
            out[rows] = 0.0  # old channels read nothing from new ones ...
            out[rows[:, None], cols] = old  # ... and what they read before
        else:
            out[rows] = old
        grown[name] = out
    return grown
