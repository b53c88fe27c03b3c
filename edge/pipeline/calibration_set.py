"""A calibration set on disk: float32 crop shards (.npy, [n,3,S,S]) plus a manifest saying how they were cut.

The TensorRT entropy calibrator, the CPU Q/DQ quantizer and the INT8 accuracy bench all read the
same folder through this class, so they all see what the runtime feeds the network.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from edge.errors import CalibrationError
from edge.model.spec import METADATA_KEY
from edge.runtime.base import metadata_object

MANIFEST = "manifest.json"
SHARD_PATTERN = "crops_*.npy"
CROP_RECIPE = ("crop_scale", "input_size", "mean", "std")  # the ModelSpec fields that decide what a crop holds
MAKE_ONE = "make one with `python -m edge.pipeline.calibration --input VIDEO_OR_DIR --out {dir}`"


@dataclass(frozen=True)
class CalibrationSet:
    folder: str
    shards: Tuple[str, ...]
    crop_shape: Tuple[int, ...]  # one crop: (3, S, S)
    count: int
    manifest: Dict[str, object]

    @classmethod
    def open(cls, folder: str) -> "CalibrationSet":
        """Check the folder holds crops of one shape; CalibrationError (one line) otherwise."""
        hint = MAKE_ONE.format(dir=folder)
        if not os.path.isdir(folder):
            raise CalibrationError(f"{folder}: calibration folder not found; {hint}")
        shards = tuple(sorted(glob.glob(os.path.join(folder, "*.npy"))))
        if not shards:
            raise CalibrationError(f"{folder}: calibration folder holds no .npy crops; {hint}")
        shapes = {}
        count = 0
        for shard in shards:
            try:
                arr = np.load(shard, mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise CalibrationError(f"{shard}: not a readable .npy file ({exc}); {hint}") from exc
            if arr.ndim != 4 or arr.dtype != np.float32:
                raise CalibrationError(f"{shard}: expected float32 crops [n,3,S,S], got {arr.dtype} "
                                       f"{list(arr.shape)}; {hint}")
            shapes[tuple(arr.shape[1:])] = shard
            count += int(arr.shape[0])
        if len(shapes) > 1:
            listed = ", ".join(f"{list(s)} in {os.path.basename(f)}" for s, f in shapes.items())
            raise CalibrationError(f"{folder}: crops of different shapes ({listed}); remake the set into an empty "
                                   "folder")
        if count == 0:
            raise CalibrationError(f"{folder}: the calibration shards hold no crops; {hint}")
        manifest = _read_manifest(folder)
        return cls(folder, shards, next(iter(shapes)), count, manifest)

    def check_model(self, model: str, inputs: Mapping[str, Sequence[Optional[int]]], metadata: Mapping[str, str]) -> str:
        """The crops fit the model's one input (all axes after the batch) and, for an ATPN export, were cut
        the way it cuts them: INT8 ranges measured on crops of another scale or normalisation are wrong
        for the crops the runtime feeds (a set cut for crop_scale 1.6 holds smaller faces than 1.45's).
        Returns the input's name."""
        if len(inputs) != 1:
            raise CalibrationError(f"{model} has {len(inputs)} inputs; INT8 calibration feeds one-input models "
                                   "(ATPN); for another model, build it from a Q/DQ ONNX with --int8 --qdq")
        (name, shape), = inputs.items()
        remake = (f"make a set for this model with `python -m edge.pipeline.calibration --onnx {model} "
                  "--input VIDEO_OR_DIR --out DIR`")
        want = tuple(shape[1:])
        if len(want) != len(self.crop_shape) or any(w is not None and w != g for w, g in zip(want, self.crop_shape)):
            dims = "x".join("?" if w is None else str(w) for w in want)
            raise CalibrationError(
                f"{self.folder}: crops are {'x'.join(map(str, self.crop_shape))} but {model}'s input '{name}' "
                f"takes {dims}; {remake}")
        cut, expected = self.manifest.get("spec"), metadata.get(METADATA_KEY)
        if isinstance(cut, dict) and expected is not None:  # else crops made elsewhere, or not ATPN: shape only
            wanted = metadata_object(model, METADATA_KEY, expected,
                                     "our export writes; re-export it with `python -m edge.model.export`")
            differ = [f"{k} {cut.get(k)} (model: {wanted[k]})" for k in CROP_RECIPE
                      if k in wanted and cut.get(k) != wanted[k]]
            if differ:
                raise CalibrationError(f"{self.folder}: crops were cut with {', '.join(differ)}; {remake}")
        return name

    def fingerprint(self) -> str:
        """Changes when the set is remade: hashes the manifest and every shard's name and size."""
        digest = hashlib.sha256(json.dumps(self.manifest, sort_keys=True).encode())
        for shard in self.shards:
            digest.update(f"{os.path.basename(shard)}:{os.path.getsize(shard)}".encode())
        return digest.hexdigest()[:16]

    def batches(self, batch_size: int, drop_last: bool = True) -> Iterator[np.ndarray]:
        """Contiguous float32 batches in file order; TensorRT wants every batch full, so the rest is dropped."""
        pending: List[np.ndarray] = []
        held = 0
        for shard in self.shards:
            arr = np.load(shard, mmap_mode="r")
            start = 0
            while start < len(arr):
                take = min(batch_size - held, len(arr) - start)
                pending.append(arr[start:start + take])
                held += take
                start += take
                if held == batch_size:
                    yield np.ascontiguousarray(np.concatenate(pending), dtype=np.float32)
                    pending, held = [], 0
        if pending and not drop_last:
            yield np.ascontiguousarray(np.concatenate(pending), dtype=np.float32)

    def all_crops(self, limit: Optional[int] = None) -> np.ndarray:
        out = np.concatenate([np.load(s) for s in self.shards])
        return out if limit is None else out[:limit]


def write_calibration_set(folder: str, crops: np.ndarray, manifest: Dict[str, object], shard_size: int = 128) -> List[str]:
    """Replace the set in `folder` with `crops` [n,3,S,S]; the manifest is written last (a complete set has one)."""
    if crops.ndim != 4 or len(crops) == 0:
        raise CalibrationError(f"no crops to write to {folder} (got an array of shape {list(crops.shape)})")
    os.makedirs(folder, exist_ok=True)
    for stale in glob.glob(os.path.join(folder, SHARD_PATTERN)) + [os.path.join(folder, MANIFEST)]:
        if os.path.exists(stale):
            os.remove(stale)
    written = []
    for i, start in enumerate(range(0, len(crops), shard_size)):
        path = os.path.join(folder, SHARD_PATTERN.replace("*", f"{i:03d}"))
        np.save(path, np.ascontiguousarray(crops[start:start + shard_size], dtype=np.float32))
        written.append(path)
    data = dict(manifest, count=int(len(crops)), crop_shape=list(crops.shape[1:]),
                shards=[os.path.basename(p) for p in written])
    with open(os.path.join(folder, MANIFEST), "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    return written


def _read_manifest(folder: str) -> Dict[str, object]:
    path = os.path.join(folder, MANIFEST)
    if not os.path.isfile(path):
        return {}  # plain .npy files made elsewhere are fine
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise CalibrationError(f"{path}: unreadable manifest ({exc}); remake the set") from exc
    return data if isinstance(data, dict) else {}
