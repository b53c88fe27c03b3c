"""Face detectors behind one protocol (`base.Detector`): BlazeFace now; a new detector is one file here.

A detector model names its kind in its ONNX metadata (BlazeFace: the `blazeface` key the converter
writes); DETECTORS maps that key to the class that runs it, so `open_detector` needs no config. A new
detector is a module here plus one line in DETECTORS.
"""
from __future__ import annotations

import importlib
from typing import Dict, Optional

from edge.detectors.base import NetworkDetector
from edge.errors import ModelError
from edge.runtime.base import Engine

# ONNX metadata key -> "module:class"; the class is built as (engine, crop_scale, score_threshold)
DETECTORS: Dict[str, str] = {
    "blazeface": "edge.detectors.blazeface:FaceDetector",
}


def open_detector(engine: Engine, crop_scale: float, score_threshold: Optional[float] = None) -> NetworkDetector:
    """The detector that runs the model in `engine`, placing first crops for ATPN crops of `crop_scale`."""
    kind = next((key for key in DETECTORS if key in engine.metadata), None)
    if kind is None:
        raise ModelError(f"{engine.path}: not a face detector this project knows (its metadata names none of "
                         f"{', '.join(DETECTORS)}); run `make models` and use models/blazeface_short.onnx or "
                         "models/blazeface_full.onnx")
    module, _, name = DETECTORS[kind].partition(":")
    return getattr(importlib.import_module(module), name)(engine, crop_scale, score_threshold)  # type: ignore[no-any-return]
