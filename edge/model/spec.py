"""The ATPN contract: input size, normalisation, landmark count and tensor names.

One source of truth shared by the network, the export (written into the ONNX metadata), every
runtime backend, training and evaluation.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Dict, Tuple

INPUT_NAME = "crop"
OUTPUT_NAMES: Tuple[str, ...] = ("landmarks", "pose", "track", "heatmap")
METADATA_KEY = "atpn_spec"
LANDMARK_HEADS: Tuple[str, ...] = ("regression", "integral")
WIDTH_RANGE = (0.25, 4.0)


@dataclass(frozen=True)
class ModelSpec:
    """What a crop looks like going in and what comes out.

    112 px input: faces at camera distance rarely exceed ~150 px on a 640x360 frame, 112 keeps
    68 points apart by >= 1.5 px on the eye contours, and it costs (112/128)^2 = 77 % of 128 px.
    The photo model takes 128 px (weights/atpn68_stills.pt): a photo has no next frame waiting.
    """

    input_size: int = 112
    num_landmarks: int = 68
    heatmap_size: int = 28
    heatmap_sigma: float = 1.0  # in heatmap cells
    mean: float = 127.5  # crop = (RGB - mean) / std, same for all channels
    std: float = 128.0
    crop_scale: float = 1.6  # crop side = crop_scale * landmark-box size (see model/crop.py)
    width: float = 1.0  # ATPN's channel multiplier (the tensors above do not depend on it)
    landmark_head: str = "regression"  # "regression" (7x7 features -> linear, shipped) or "integral" (soft-argmax on S/4)

    def __post_init__(self) -> None:
        if self.num_landmarks not in (68, 98):
            raise ValueError(f"num_landmarks must be 68 or 98, got {self.num_landmarks}")
        if self.input_size % 16 != 0:
            raise ValueError(f"input_size must be a multiple of 16, got {self.input_size}")
        if self.landmark_head not in LANDMARK_HEADS:
            raise ValueError(f"landmark_head must be one of {', '.join(LANDMARK_HEADS)}, got {self.landmark_head!r}")
        if not WIDTH_RANGE[0] <= self.width <= WIDTH_RANGE[1]:
            raise ValueError(f"width must be in [{WIDTH_RANGE[0]}, {WIDTH_RANGE[1]}], got {self.width}")

    def output_shapes(self, batch: int) -> Dict[str, Tuple[int, ...]]:
        """The shape of every named output for a batch of crops."""
        return {
            "landmarks": (batch, self.num_landmarks, 2),
            "pose": (batch, 3),
            "track": (batch, 1),
            "heatmap": (batch, 1, self.heatmap_size, self.heatmap_size),
        }

    def sized(self, input_size: int) -> "ModelSpec":
        """This spec for crops of `input_size` px; the heatmap grid follows (the shallow features', S/4)."""
        return replace(self, input_size=input_size, heatmap_size=input_size // 4)

    def input_shape(self, batch: int) -> Tuple[int, int, int, int]:
        return (batch, 3, self.input_size, self.input_size)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelSpec":
        """The spec `to_json` wrote; anything else (not JSON, unknown keys, wrong types, bad values) is a
        one-line ValueError, since a model file's metadata can be anything. Missing keys take the defaults
        (files from before a field existed)."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object of {', '.join(f.name for f in fields(cls))}, got {text[:60]!r}")
        known = {f.name: type(f.default) for f in fields(cls)}
        for key, value in data.items():
            if key not in known:
                raise ValueError(f"unknown key {key!r}; known: {', '.join(known)}")
            want = known[key]
            if isinstance(value, bool) or not isinstance(value, (int, float) if want is float else want):
                raise ValueError(f"{key} must be {want.__name__}, got {value!r}")
        return cls(**data)
