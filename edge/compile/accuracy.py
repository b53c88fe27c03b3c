"""How far a reduced-precision ATPN (Q/DQ ONNX, FP16 or INT8 engine) is from FP32, on the same crops.

Pure numpy on name-keyed outputs, so ONNX Runtime and TensorRT results are compared the same way.
Landmark error is normalised by the inter-ocular distance of the FP32 points (the NME of the
face-alignment literature); crops where FP32 puts the outer eye corners under 10 % of the crop
apart (no face, or an untrained model) are left out of the NME but not of the pixel error.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Mapping

import numpy as np

OUTER_EYE_CORNERS = {68: (36, 45), 98: (60, 72)}
MIN_IOD = 0.10  # crop units
TRACK_THRESHOLD = 0.5


@dataclass(frozen=True)
class OutputDiff:
    crops: int
    nme_iod: float  # mean point error / FP32 inter-ocular distance (nan when no crop qualifies)
    nme_crops: int  # crops that entered the NME
    landmarks_px: float  # mean point error, input pixels
    landmarks_px_max: float
    pose_deg: float  # mean |yaw, pitch, roll| difference
    pose_deg_max: float
    track: float  # mean |score| difference
    track_flips: float  # share of crops whose track decision (score >= 0.5) changes
    heatmap_max: float

    def as_dict(self) -> Dict[str, float]:
        return asdict(self)

    def describe(self) -> str:
        nme = "n/a (FP32 eyes collapse: untrained model?)" if self.nme_crops == 0 else f"{100 * self.nme_iod:.3f} %"
        return (f"NME diff {nme} | landmarks {self.landmarks_px:.3f} px (max {self.landmarks_px_max:.2f}) | "
                f"pose {self.pose_deg:.3f} deg (max {self.pose_deg_max:.2f}) | track {self.track:.4f} "
                f"({100 * self.track_flips:.1f} % flips) | heatmap max {self.heatmap_max:.3f}")


def compare_outputs(ref: Mapping[str, np.ndarray], test: Mapping[str, np.ndarray], input_size: int) -> OutputDiff:
    """`test` against the FP32 reference `ref`, both {landmarks [B,N,2] in [0,1], pose [B,3], track [B,1], heatmap}."""
    f = np.asarray(ref["landmarks"], dtype=np.float64)
    q = np.asarray(test["landmarks"], dtype=np.float64)
    err = np.linalg.norm(q - f, axis=2)  # [B,N], crop units
    a, b = OUTER_EYE_CORNERS[f.shape[1]]
    iod = np.linalg.norm(f[:, a] - f[:, b], axis=1)
    ok = iod >= MIN_IOD
    pose = np.abs(np.asarray(test["pose"], np.float64) - np.asarray(ref["pose"], np.float64))
    track_f, track_q = np.asarray(ref["track"], np.float64)[:, 0], np.asarray(test["track"], np.float64)[:, 0]
    heat = np.abs(np.asarray(test["heatmap"], np.float64) - np.asarray(ref["heatmap"], np.float64))
    return OutputDiff(
        crops=len(f),
        nme_iod=float((err[ok].mean(1) / iod[ok]).mean()) if ok.any() else float("nan"),
        nme_crops=int(ok.sum()),
        landmarks_px=float(err.mean() * input_size),
        landmarks_px_max=float(err.max() * input_size),
        pose_deg=float(pose.mean()),
        pose_deg_max=float(pose.max()),
        track=float(np.abs(track_q - track_f).mean()),
        track_flips=float(((track_q >= TRACK_THRESHOLD) != (track_f >= TRACK_THRESHOLD)).mean()),
        heatmap_max=float(heat.max()),
    )


def run_onnx(path: str, crops: np.ndarray, batch: int = 32, threads: int = 1) -> Dict[str, np.ndarray]:
    """All outputs of an ONNX model on `crops` with ONNX Runtime (CPU), in batches."""
    from edge.model.spec import INPUT_NAME
    from edge.runtime.onnxrt import OnnxRuntimeEngine

    parts: Dict[str, list] = {}
    with OnnxRuntimeEngine(path, threads=threads) as engine:
        for start in range(0, len(crops), batch):
            for name, value in engine.infer({INPUT_NAME: crops[start:start + batch]}).items():
                parts.setdefault(name, []).append(value)
    return {name: np.concatenate(values) for name, values in parts.items()}
