"""ATPN on a frame: crops in, landmarks (frame px), pose (deg), track score out, on any backend."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Mapping, Sequence

import numpy as np

from edge.errors import ModelError
from edge.model.spec import INPUT_NAME, METADATA_KEY, ModelSpec
from edge.model.crop import (MIRROR_POSE, CropBox, crop_from_landmarks, landmarks_to_frame, mirror_permutation,
                             pose_to_frame, warp_crops)
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
    try:
        spec = ModelSpec.from_json(text)
    except ValueError as exc:
        raise ModelError(f"{engine.path}: bad '{METADATA_KEY}' metadata ({exc}); re-export it with "
                         "`python -m edge.model.export`") from exc
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
    """All faces of a frame go through the network in one batch.

    With `mirror_average` every face goes in twice, as cut and mirrored, and the two answers are
    averaged: lower landmark error (HELEN test, detector boxes: 4.32 -> 4.22 % NME, integral model)
    for twice the network work, which a GPU's batch hides better than a CPU. Callers warp
    `network_boxes(boxes)`.
    """

    def __init__(self, engine: Engine, mirror_average: bool = False) -> None:
        self.engine = engine
        self.spec = spec_of(engine)
        self.mirror_average = mirror_average
        self._mirror = mirror_permutation(self.spec.num_landmarks)

    def __call__(self, frame_bgr: np.ndarray, boxes: Sequence[CropBox]) -> Alignment:
        crops, matrices = warp_crops(frame_bgr, self.network_boxes(boxes), self.spec)
        return self.run_crops(crops, matrices, boxes)

    def network_boxes(self, boxes: Sequence[CropBox]) -> List[CropBox]:
        """The crops the network sees for `boxes`: the boxes, then their mirrors when averaging."""
        return list(boxes) + ([b.mirror() for b in boxes] if self.mirror_average else [])

    def run_crops(self, crops: np.ndarray, matrices: np.ndarray, boxes: Sequence[CropBox]) -> Alignment:
        """The network and post-processing on crops already warped from `network_boxes(boxes)`
        (the loop times the two apart)."""
        return self.decode_outputs(self.engine.infer({INPUT_NAME: crops}), matrices, boxes)

    def decode_outputs(self, out: Mapping[str, np.ndarray], matrices: np.ndarray,
                       boxes: Sequence[CropBox]) -> Alignment:
        """Raw network outputs for `network_boxes(boxes)` -> one frame-space answer per box (any backend,
        CPU- or GPU-warped crops)."""
        n, size = len(boxes), self.spec.input_size
        landmarks = landmarks_to_frame(out["landmarks"][:n], matrices[:n], size)
        pose, track, heatmap = out["pose"][:n], out["track"][:n, 0], out["heatmap"][:n]
        if self.mirror_average:
            # A mirrored crop shows the subject's left as right: its point i is the face's point perm[i],
            # yaw and roll change sign, the heatmap is flipped; its matrix already undoes the flip in x.
            m = slice(n, 2 * n)
            landmarks = (landmarks + landmarks_to_frame(out["landmarks"][m][:, self._mirror], matrices[m], size)) / 2
            pose = (pose + out["pose"][m] * MIRROR_POSE) / 2
            track = (track + out["track"][m, 0]) / 2
            heatmap = (heatmap + out["heatmap"][m][..., ::-1]) / 2
        angles_deg = np.array([b.angle_deg for b in boxes], dtype=np.float32)
        return Alignment(landmarks_px=landmarks, pose_deg=pose_to_frame(pose, angles_deg), track=track,
                         heatmap=heatmap)


AlignFn = Callable[[np.ndarray, List[CropBox]], Alignment]  # an Aligner, or a loop's timed (maybe GPU) call of one


def refine(align: AlignFn, image: np.ndarray, crops: List[CropBox], passes: int, scale: float) -> Alignment:
    """`passes` (>= 1) ATPN passes over `crops`, each after the first cropped from the last landmarks at `scale`:
    how a photo is aligned (stills), how the eval's oracle crops are, and how the ensemble teacher labels."""
    for _ in range(passes):
        result = align(image, crops)
        crops = [crop_from_landmarks(points, scale) for points in result.landmarks_px]
    return result
