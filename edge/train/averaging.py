"""Weight averaging over the last epochs of a run (stochastic weight averaging, Izmailov et al. 2018).

Late in training the validation NME still jumps by ~0.1 % from epoch to epoch: each epoch's weights
sit at a different point of a wide, flat valley. Their mean sits nearer its centre and generalises
better, at no cost when the model runs. The batch-norm statistics of the mean are not the mean of
the statistics, so they are measured again on training crops.
"""
from __future__ import annotations

from typing import Dict, Iterable, Optional

import torch
from torch import nn


class WeightAverage:
    """Running mean of a model's floating-point tensors, one sample per `add`; checkpointable."""

    def __init__(self, state: Optional[Dict[str, torch.Tensor]] = None, count: int = 0) -> None:
        self.mean: Dict[str, torch.Tensor] = dict(state or {})
        self.count = count

    def add(self, weights: Dict[str, torch.Tensor]) -> None:
        """Fold in one state_dict (on the CPU, as `model_state` gives it)."""
        self.count += 1
        for name, value in weights.items():
            if not value.is_floating_point():
                self.mean[name] = value.clone()  # e.g. BN's num_batches_tracked: a counter, not a weight
            elif name not in self.mean:
                self.mean[name] = value.clone()
            else:
                self.mean[name] += (value - self.mean[name]) / self.count

    def to_checkpoint(self) -> Dict[str, object]:
        return {"state": self.mean, "count": self.count}

    @classmethod
    def from_checkpoint(cls, saved: Optional[Dict[str, object]]) -> "WeightAverage":
        if not saved:
            return cls()
        return cls(saved["state"], int(saved["count"]))  # type: ignore[arg-type]


@torch.no_grad()
def remeasure_batch_norm(model: nn.Module, crops: Iterable[torch.Tensor]) -> None:
    """Replace every BN layer's running mean/var by the plain average over `crops` batches (train mode,
    no weight changes): the statistics that belong to averaged weights."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # None = cumulative average over all batches seen
    was_training = model.training
    model.train()
    for batch in crops:
        model(batch)
    model.train(was_training)
    for m, momentum in zip(layers, momenta):
        m.momentum = momentum
