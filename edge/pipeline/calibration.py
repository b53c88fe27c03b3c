"""`python -m edge.pipeline.calibration --input VIDEO_OR_DIR --out calibration/atpn`: an INT8 calibration set.

Runs the loop's detector cascade (short-range, then full-range when it finds nothing) over the
user's own video or images and cuts every face exactly as the runtime does (the detector's own first crop +
`warp_crops`: same warp, same normalisation), so INT8 calibration measures the activations
inference will see, distant faces included. Crops are saved as .npy shards with a
manifest (see calibration_set.py); TensorRT's entropy calibrator, the CPU Q/DQ quantizer and the
INT8 accuracy bench read that folder.
"""
from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from edge.pipeline.calibration_set import write_calibration_set
from edge.runtime.engine_request import utc_now
from edge.config import ModelsConfig
from edge.errors import CalibrationError, EdgeError
from edge.model.spec import ModelSpec


@dataclass(frozen=True)
class CropReport:
    kept: int
    frames: int
    frames_without_face: int
    shards: List[str]


def atpn_spec(onnx_path: str) -> ModelSpec:
    """The crop geometry and normalisation the ATPN model was exported with."""
    from edge.pipeline.aligner import spec_of
    from edge.runtime.onnxrt import OnnxRuntimeEngine

    with OnnxRuntimeEngine(onnx_path, threads=1) as engine:
        return spec_of(engine)


def collect_crops(source_uri: str, detector_paths: Sequence[str], spec: ModelSpec, max_crops: int,
                  every: int) -> Tuple[np.ndarray, int, int]:
    """Faces the detector cascade finds on every `every`-th frame, placed and warped as the tracker does;
    stops at max_crops."""
    from tqdm import tqdm

    from edge.model.crop import warp_crops
    from edge.detectors.base import DetectorCascade
    from edge.detectors import open_detector
    from edge.io.uri import open_source
    from edge.runtime.onnxrt import OnnxRuntimeEngine

    crops: List[np.ndarray] = []
    kept = frames = empty = 0
    with ExitStack() as stack:
        detector = DetectorCascade([open_detector(stack.enter_context(OnnxRuntimeEngine(path, threads=1)), spec.crop_scale)
                                    for path in detector_paths])
        source = stack.enter_context(open_source(source_uri))
        bar = tqdm(total=max_crops, desc="calibration crops", unit="crop", file=sys.stderr, leave=False,
                   disable=not sys.stderr.isatty())
        for frame in source:
            if frame.index % every:
                continue
            frames += 1
            boxes = list(detector.detect(frame.image).crops)
            if not boxes:
                empty += 1
                continue
            batch, _ = warp_crops(frame.image, boxes[: max_crops - kept], spec)
            crops.append(batch)
            kept += len(batch)
            bar.update(len(batch))
            if kept >= max_crops:
                break
        bar.close()
    if not kept:
        raise CalibrationError(f"no face found in {frames} frame(s) of {source_uri}; use a video or images with "
                               "visible faces (the set must look like what the camera will see)")
    return np.concatenate(crops), frames, empty


def make_calibration_set(source_uri: str, out: str, atpn_onnx: str, detector_path: str, max_crops: int = 500,
                         every: int = 1, detector_far: str = "") -> CropReport:
    """`detector_far` ("" = none) runs where `detector_path` finds nothing, as in the loop (the CLI passes
    the run config's two models)."""
    if max_crops < 1 or every < 1:
        raise CalibrationError(f"--max-crops and --every must be >= 1, got {max_crops} and {every}")
    spec = atpn_spec(atpn_onnx)
    detectors = [path for path in (detector_path, detector_far) if path]
    crops, frames, empty = collect_crops(source_uri, detectors, spec, max_crops, every)
    manifest = {
        "source": source_uri, "atpn_onnx": atpn_onnx, "detector": detector_path, "detector_far": detector_far,
        "every": every, "spec": asdict(spec), "created_utc": utc_now(),
    }
    shards = write_calibration_set(out, crops, manifest)
    return CropReport(len(crops), frames, empty, shards)


def main(argv: Optional[list] = None) -> int:
    models = ModelsConfig()
    ap = argparse.ArgumentParser(prog="python -m edge.pipeline.calibration", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", required=True, help="video file, folder of images, or any source URI")
    ap.add_argument("--out", default="calibration/atpn", help="folder for the set (replaced; default: %(default)s)")
    ap.add_argument("--max-crops", type=int, default=500, help="stop after this many face crops (default: %(default)s)")
    ap.add_argument("--every", type=int, default=1, help="use every N-th frame, for variety (default: %(default)s)")
    ap.add_argument("--onnx", default=models.path("atpn"), help="ATPN model the crops are cut for (default: %(default)s)")
    ap.add_argument("--detector", default=models.path("detector"), help="face detector ONNX, tried first "
                    "(default: %(default)s)")
    ap.add_argument("--detector-far", default=models.path("detector_far"), help="detector for the frames the first "
                    "finds nothing on, as in the loop; \"\" = none (default: %(default)s)")
    args = ap.parse_args(argv)
    try:
        report = make_calibration_set(args.input, args.out, args.onnx, args.detector, args.max_crops, args.every,
                                      args.detector_far)
    except EdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"kept {report.kept} face crops from {report.frames} frames ({report.frames_without_face} without a face) "
          f"-> {args.out} ({len(report.shards)} shard(s))")
    if report.kept < 100:
        print("note: fewer than 100 crops; INT8 scales from so few faces may not hold on new footage", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
