"""The one Engine interface every backend implements: name-keyed numpy arrays in and out.

Backends know nothing about faces; the ATPN/detector contracts are checked by their callers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple

import numpy as np

Shape = Tuple[Optional[int], ...]  # None marks a dynamic axis


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: Shape
    dtype: np.dtype

    def describe(self) -> str:
        dims = ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}[{dims}] {np.dtype(self.dtype).name}"


class Engine:
    """Load a model, run batches, close. Use as a context manager."""

    backend = "abstract"
    path: str
    inputs: Dict[str, TensorSpec]
    outputs: Dict[str, TensorSpec]
    metadata: Dict[str, str]

    def infer(self, feed: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the backend's resources; calling it twice is harmless."""

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        ins = ", ".join(t.describe() for t in self.inputs.values())
        outs = ", ".join(t.describe() for t in self.outputs.values())
        return f"{self.backend} {self.path}: in {ins}; out {outs}"
