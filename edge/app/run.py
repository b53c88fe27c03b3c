"""The camera loop assembled from a Config: source, engines, detector, aligner, tracker, sinks."""
from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable, Optional

from edge.config import Config
from edge.pipeline.aligner import Aligner
from edge.detectors.base import DetectorCascade
from edge.detectors import open_detector
from edge.pipeline.loop import FacePipeline, run_loop
from edge.io.sinks import SinkOptions, Sinks, open_sink
from edge.pipeline.render import default_overlay
from edge.io.sources import Source
from edge.io.uri import open_source
from edge.pipeline.stats import RunStats
from edge.pipeline.tracker import Tracker
from edge.runtime import backend_named, open_engine


def open_pipeline(config: Config, stack: ExitStack, log: Callable[[str], None] = lambda line: None,
                  live_source: bool = False, stills: bool = False) -> FacePipeline:
    """Both engines on the configured backend (closed with `stack`), wired into one pipeline.

    A backend that builds engines (TensorRT) gets them from the configured ONNX files, built on first use
    and cached, like jetson-inference; one whose engines run on the device gets the GPU loop (pre-processing
    there, one stream). A live source paces the loop, so by default ONNX Runtime's threads sleep between
    frames (runtime.spin). Photos (`stills`) get their own ATPN model (models.atpn_stills)."""
    runtime = config.runtime
    backend = backend_named(runtime.backend)
    spin = runtime.spins(live_source)
    max_crops = config.tracker.max_faces * (2 if runtime.mirror_average else 1)  # ATPN's largest batch
    atpn_engine = stack.enter_context(open_engine(engine_file(config, config.models.atpn_path(stills),
                                                              f"1:{max_crops}:{max_crops}", log),
                                                  runtime.backend, runtime.threads, spin))
    aligner = Aligner(atpn_engine, mirror_average=runtime.mirror_average)
    scale = aligner.spec.crop_scale
    detectors = []
    for path in config.models.detector_paths():
        engine = stack.enter_context(open_engine(engine_file(config, path, "1", log), runtime.backend,
                                                 runtime.detector_threads, spin))
        detectors.append(open_detector(engine, scale, config.detector.score_threshold))
    detector = DetectorCascade(detectors)
    tracker = Tracker(config.tracker, crop_scale=scale)
    if not backend.on_device:
        return FacePipeline(detector, aligner, tracker)
    from edge.pipeline.gpu_loop import GpuFacePipeline

    pipeline = GpuFacePipeline(detector, aligner, tracker, max_crops)
    stack.callback(pipeline.close)
    return pipeline


def engine_file(config: Config, path: str, batch: str, log: Callable[[str], None]) -> str:
    """The file the backend opens: `path` itself, or for a backend that builds engines (TensorRT) the engine
    built from that ONNX (edge.compile; reused while the ONNX, library and GPU are unchanged).

    FP16 (the default) where the library has the builder flag; a strongly typed library (TensorRT 11,
    TensorRT-RTX) builds the FP32 ONNX as FP32, said once, rather than refusing the default config."""
    if not backend_named(config.runtime.backend).builds_engines or not path.endswith(".onnx"):
        return path
    from edge.compile.builder import build_engine
    from edge.runtime.engine_request import BuildRequest
    from edge.runtime.trt_compat import features_of, import_tensorrt

    fp16 = config.runtime.precision == "fp16"
    features = features_of(import_tensorrt())
    if fp16 and features.strongly_typed_only:
        fp16 = False
        log(f"note: {features.describe()} is strongly typed (no FP16 flag): {Path(path).name} runs as FP32; "
            "for FP16 convert the ONNX to FP16 and point models.* at it")
    return build_engine(BuildRequest(onnx=path, fp16=fp16, batch=batch)).engine_path


def run(config: Config, stats: RunStats, log: Callable[[str], None] = lambda line: None,
        on_loop_end: Callable[[], None] = lambda: None) -> RunStats:
    """The whole job; `stats` fills frame by frame, so it is complete up to a stop or an error.

    The outputs open before the engines (a bad path fails before a TensorRT build, not after).
    `on_loop_end` runs as the loop ends, however it ends, before anything closes: the CLI stops
    turning signals into exceptions there, so the video is always finalised."""
    with ExitStack() as stack:
        source = stack.enter_context(open_source(config.source.input, config.source.live(), log))
        stills = config.stills.applies_to(source.photos)
        log(f"input: {source.uri}" + (" (no camera found)" if config.source.input == "auto" and not source.live
                                       else "") + (" as stills (each picture on its own)" if stills else ""))
        sinks = open_sinks(config, getattr(source, "fps", 30.0), default_overlay(lambda: stats.fps), stack, log)
        pipeline = open_pipeline(config, stack, log, live_source=source.live, stills=stills)
        progress = _progress_bar(source, config, stack)
        try:
            run_loop(source, pipeline, sinks, stats, config.source.max_frames,
                     on_frame=(lambda frame, faces: progress.update(1)) if progress is not None else None,
                     stills=config.stills if stills else None)
        finally:
            on_loop_end()
            stats.skipped = source.skipped
    return stats


def open_sinks(config: Config, fps: float, overlay: object, stack: ExitStack,
               log: Callable[[str], None] = lambda line: None) -> Sinks:
    """Every sink the config asks for, closed with `stack` (one that fails to open closes those before it)."""
    opened = []
    for target, key, flag in config.output.sink_targets():
        sink = open_sink(target, SinkOptions(fps=fps, flag=flag, log=log), key)
        stack.callback(sink.close)
        opened.append(sink)
    return Sinks(opened, overlay)


def _progress_bar(source: Source, config: Config, stack: ExitStack) -> Optional[Any]:
    """A tqdm line for files on a terminal (none in logs, for live cameras or with --quiet)."""
    if source.live or config.output.quiet:
        return None
    from tqdm import tqdm

    total = source.length
    if total and config.source.max_frames:
        total = min(total, config.source.max_frames)
    bar = tqdm(total=total, unit="frame", file=sys.stderr, leave=False, dynamic_ncols=True, disable=None)
    stack.callback(bar.close)
    return bar
