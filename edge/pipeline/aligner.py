"""ATPN on a frame: crops in, landmarks (frame px), pose (deg), track score out, on any backend."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from edge.errors import ModelError
from edge.model.spec import INPUT_NAME, METADATA_KEY, ModelSpec
from edge.pipeline.crop import CropBox, landmarks_to_frame, pose_to_frame, warp_crops
from edge.runtime.base import Engine


@dataclass(frozen=True)
class Alignment:
    """Parallel arrays, one row per crop."""

    landmarks_px: np.ndarray  # [B,N,2] frame pixels
    pose_deg: np.ndarray  # [B,3] yaw, pitch, roll in the frame
    track: np.ndarray  # [B] probability the crop holds a well-framed face
    heatmap: np.ndarray  # [B,1,h,w]


def spec_of(engine: Engine) -> ModelSpec:
    """The ModelSpec an ATPN engine was exported with, checked against its inputs and outputs."""
    text = engine.metadata.get(METADATA_KEY)
    if text is None:
        raise ModelError(f"{engine.path}: no '{METADATA_KEY}' metadata, so not an ATPN export; "
                         "export one with `python -m edge.model.export`")
    spec = ModelSpec.from_json(text)
    expected = {INPUT_NAME: spec.input_shape(1)[1:], **{k: v[1:] for k, v in spec.output_shapes(1).items()}}
    found = {**engine.inputs, **engine.outputs}
    for name, dims in expected.items():
        if name not in found:
            raise ModelError(f"{engine.path}: ATPN tensor '{name}' is missing; found {sorted(found)}")
        if tuple(found[name].shape[1:]) != tuple(dims):
            raise ModelError(f"{engine.path}: '{name}' has shape {found[name].describe()}, expected [batch,"
                             f"{','.join(map(str, dims))}]")
    return spec


class Aligner:
    """All faces of a frame go through the network in one batch."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.spec = spec_of(engine)

    def __call__(self, frame_bgr: np.ndarray, boxes: Sequence[CropBox]) -> Alignment:
        crops, matrices = warp_crops(frame_bgr, boxes, self.spec)
        return self.run_crops(crops, matrices, boxes)

    def run_crops(self, crops: np.ndarray, matrices: np.ndarray, boxes: Sequence[CropBox]) -> Alignment:
        """The network and post-processing on crops already warped from `boxes` (the loop times the two apart)."""
        return self.decode_outputs(self.engine.infer({INPUT_NAME: crops}), matrices, boxes)

    def decode_outputs(self, out: Mapping[str, np.ndarray], matrices: np.ndarray,
                       boxes: Sequence[CropBox]) -> Alignment:
        """Raw network outputs -> frame landmarks and pose (any backend, CPU- or GPU-warped crops)."""
        angles_deg = np.array([b.angle_deg for b in boxes], dtype=np.float32)
        return Alignment(
            landmarks_px=landmarks_to_frame(out["landmarks"], matrices, self.spec.input_size),
            pose_deg=pose_to_frame(out["pose"], angles_deg),
            track=out["track"][:, 0],
            heatmap=out["heatmap"],
        )
