"""Implicit INT8 (TensorRT < 11): an entropy calibrator that feeds the calibration set to the builder.

The calibration cache is written beside the set, named by the model and the set it came from, so a
later build (another batch profile, FP16 fallback on or off) reuses it and skips calibration.
"""
from __future__ import annotations

import os
from typing import Any, List, Optional

import numpy as np

from edge.pipeline.calibration_set import CalibrationSet
from edge.runtime.trt_compat import ProgressDisplay
from edge.fileio import write_atomic

MAX_CALIBRATION_BATCH = 8


def calibration_cache_path(calib: CalibrationSet, onnx_stem: str, onnx_sha256: str, library: str) -> str:
    """Beside the set, per model, set and TensorRT library (`library` is its tag: a cache from another
    TensorRT version may hold other scales, and TensorRT would use it without a word)."""
    name = f"{onnx_stem}-{onnx_sha256[:12]}-{calib.fingerprint()[:12]}.{library}.calib.cache"
    return os.path.join(calib.folder, name)


def calibration_batch(calib: CalibrationSet, opt_batch: int) -> int:
    """Full batches only, never more than the set holds."""
    return max(1, min(opt_batch, MAX_CALIBRATION_BATCH, calib.count))


def make_entropy_calibrator(trt: Any, cuda: Any, calib: CalibrationSet, batch_size: int, cache_path: str,
                            display: ProgressDisplay) -> Any:
    """An IInt8EntropyCalibrator2 over `calib` for a one-input network; create it inside `shared_context().active()`
    and keep a reference until the build returns (TensorRT holds none)."""
    total = calib.count // batch_size

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._batches = calib.batches(batch_size)
            nbytes = batch_size * int(np.prod(calib.crop_shape)) * 4
            self._device = cuda.mem_alloc(nbytes)
            self._done = 0

        def get_batch_size(self) -> int:  # deprecated in 10 (explicit batch) but still called
            return batch_size

        def get_batch(self, names: List[str]) -> Optional[List[int]]:
            batch = next(self._batches, None)
            if batch is None:
                display.line(f"[calibrate] {self._done} batches of {batch_size} crops done")
                return None
            cuda.memcpy_htod(self._device, batch)
            self._done += 1
            display.line(f"[calibrate] batch {self._done}/{total}", transient=True)
            return [int(self._device)]

        def read_calibration_cache(self) -> Optional[bytes]:
            if os.path.isfile(cache_path):
                display.line(f"[calibrate] reusing {cache_path}")
                with open(cache_path, "rb") as f:
                    return f.read()
            return None

        def write_calibration_cache(self, cache: Any) -> None:
            write_atomic(cache_path, bytes(cache))
            display.line(f"[calibrate] wrote {cache_path}")

    return EntropyCalibrator()

