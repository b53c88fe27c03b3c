"""Which layers stay float in an INT8 ATPN, decided once for both INT8 routes.

The Q/DQ quantizer (an ONNX graph) and TensorRT's calibrated build (a TensorRT network) each describe
their graph as `Layer`s and get the same answer:
- everything fed by the landmarks (heatmap renderer, fusion, pose and track heads): int8 Gaussians
  and the features they gate lose the geometry the heads read;
- a soft-argmax head's Softmax and the expectation after it: int8 probabilities over 784 cells
  round a peaked map to a few steps (points moved by 32 px);
- the chain of single-input layers that feeds that Softmax, back to the last merge (the integral
  head's refine and logits convolutions): int8 logits blur the peak (measured on HELEN test crops,
  points moved 1.36 px with them int8, 0.47 px with them float; bench/int8_accuracy.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Set, Tuple

LANDMARK_OUTPUT = "landmarks"  # ATPN's landmark tensor: the float part starts after it


@dataclass(frozen=True)
class Layer:
    name: str
    is_softmax: bool
    inputs: Tuple[str, ...]  # data tensors only: no weights or constants
    outputs: Tuple[str, ...]


def float_layers(layers: Sequence[Layer], landmark_tensor: str) -> List[str]:
    """Names of the layers to keep float (see the module docstring), in no particular order."""
    consumers: Dict[str, List[Layer]] = {}
    producer: Dict[str, Layer] = {}
    for layer in layers:
        for name in layer.inputs:
            consumers.setdefault(name, []).append(layer)
        for name in layer.outputs:
            producer[name] = layer
    keep: Set[str] = set()

    def downstream(tensor: str) -> None:
        todo = [tensor]
        while todo:
            for layer in consumers.get(todo.pop(), []):
                if layer.name not in keep:
                    keep.add(layer.name)
                    todo.extend(layer.outputs)

    downstream(landmark_tensor)
    for softmax in (layer for layer in layers if layer.is_softmax):
        keep.add(softmax.name)
        for out in softmax.outputs:
            downstream(out)
        feed = producer.get(softmax.inputs[0]) if len(softmax.inputs) == 1 else None
        while feed is not None and len(feed.inputs) == 1:
            keep.add(feed.name)
            feed = producer.get(feed.inputs[0])
    return sorted(keep)
