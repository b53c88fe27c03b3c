"""ONNX -> TensorRT engine + sidecar, reusing an existing engine when its cache key matches.

Everything that can be checked without a GPU (the ONNX, the batch profile, the calibration set) is
checked first, so bad input fails in one line on any machine; then TensorRT builds through the
compatibility layer (trt_compat) on one code path for TensorRT 8.5 to 11.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional, Tuple

from edge.pipeline.calibration_set import CalibrationSet
from edge.runtime.gpu import GpuInfo, query_gpu
from edge.runtime.engine_request import ENGINES_DIR, BuildRequest, ProfileShapes, profile_shapes, utc_now
from edge.runtime.sidecar import CacheKey, Sidecar, read_sidecar, reusable, write_sidecar
from edge.runtime import trt_compat as compat
from edge.compile.precision import LANDMARK_OUTPUT, Layer, float_layers
from edge.compile.onnx_info import OnnxInfo, inspect_onnx
from edge.errors import EngineError, ModelError
from edge.fileio import file_sha256, write_atomic

if TYPE_CHECKING:  # the tensorrt-stubs package: `make lint` checks our TensorRT calls against it
    import tensorrt

@dataclass(frozen=True)
class BuildPlan:
    """A request checked on the CPU: what TensorRT will be asked to do."""

    request: BuildRequest
    onnx: OnnxInfo
    profile: ProfileShapes
    calib: Optional[CalibrationSet]


@dataclass(frozen=True)
class BuildResult:
    engine_path: str
    sidecar: Sidecar
    built: bool  # False: an up-to-date engine was reused
    note: str  # why it was (re)built, or that it was reused


def plan_build(request: BuildRequest) -> BuildPlan:
    """All checks that need no GPU; raises one-line EdgeErrors."""
    onnx = inspect_onnx(request.onnx)
    if request.qdq and not onnx.has_qdq:
        raise ModelError(f"{request.onnx} has no Q/DQ nodes, so --qdq has no INT8 scales to use; make a Q/DQ model "
                         f"with `python -m edge.compile.quantize --onnx {request.onnx} --calib DIR`")
    if onnx.has_qdq and not request.qdq:
        raise ModelError(f"{request.onnx} is a Q/DQ (explicitly quantized) model: build it with --int8 --qdq")
    profile = profile_shapes(onnx.inputs, request.profile)
    calib = None
    if request.calib:
        calib = CalibrationSet.open(request.calib)
        calib.check_model(request.onnx, onnx.inputs, onnx.metadata)
    return BuildPlan(request, onnx, profile, calib)


def default_engine_path(onnx_path: str, precision: str, batch: Optional[str], library: str, gpu: GpuInfo) -> str:
    """engines/<model>.<precision>[.b<min>-<opt>-<max>].<library tag>.<gpu>.engine: one file per thing that
    makes engines differ (the batch profile only for models with a dynamic batch axis)."""
    parts = [Path(onnx_path).stem, precision] + ([f"b{batch.replace(':', '-')}"] if batch else []) + [library,
                                                                                                   gpu.slug()]
    return str(ENGINES_DIR / (".".join(parts) + ".engine"))


def default_timing_cache(library: str, gpu: GpuInfo) -> str:
    return str(ENGINES_DIR / f"timing.{library}.{gpu.slug()}.cache")


def target_gpu(features: compat.TrtFeatures, compute_capability: Optional[str]) -> GpuInfo:
    """The GPU to build for: the one present, or (TensorRT-RTX) any GPU of the compute capability asked for."""
    if compute_capability is not None:
        if not features.target_compute_capability:
            raise EngineError(f"{features.describe()} builds for the GPU it runs on: drop --compute-capability "
                              "(only TensorRT-RTX builds ahead of time for another GPU)")
        return GpuInfo.any_of(compute_capability)
    try:
        return query_gpu()
    except EngineError as exc:
        if features.target_compute_capability:
            raise EngineError(f"{exc}; {features.describe()} builds without one for the GPU that will run the "
                              "engine: pass --compute-capability MAJOR.MINOR (e.g. 8.9)") from exc
        raise


def cache_key(plan: BuildPlan, tensorrt: str, gpu: GpuInfo) -> CacheKey:
    return CacheKey(onnx_sha256=plan.onnx.sha256, precision=plan.request.precision, profile=plan.profile,
                    tensorrt=tensorrt, gpu=gpu, calibration=plan.calib.fingerprint() if plan.calib else None)


def build_engine(request: BuildRequest, display: Optional[compat.ProgressDisplay] = None) -> BuildResult:
    """Build (or reuse) the engine a request describes, with its sidecar."""
    plan = plan_build(request)
    trt = compat.import_tensorrt()
    features = compat.features_of(trt)
    compat.check_precision(features, request.fp16, request.int8, request.qdq)
    gpu = target_gpu(features, request.compute_capability)
    key = cache_key(plan, features.tag, gpu)
    engine_path = request.save_engine or default_engine_path(
        request.onnx, request.precision, str(request.profile) if plan.profile else None, features.tag, gpu)
    why = "--rebuild" if request.rebuild else reusable(engine_path, key)
    if why is None:
        return BuildResult(engine_path, read_sidecar(engine_path), False, "up to date (same ONNX, precision, "
                           f"profile, {features.describe()}, {gpu.describe()}); --rebuild to build it again")
    display = display or compat.ProgressDisplay()
    t0 = time.monotonic()
    engine, flags = _build_with_tensorrt(trt, features, plan, gpu, display)
    seconds = time.monotonic() - t0
    write_atomic(engine_path, engine)
    sidecar = Sidecar(key=key, request=replace(request, rebuild=False), engine_bytes=len(engine),
                      engine_sha256=file_sha256(engine_path), build_flags=flags, onnx_metadata=plan.onnx.metadata,
                      built_utc=utc_now(), build_seconds=seconds)
    write_sidecar(engine_path, sidecar)
    return BuildResult(engine_path, sidecar, True, why)


def _build_with_tensorrt(trt: Any, features: compat.TrtFeatures, plan: BuildPlan, gpu: GpuInfo,
                         display: compat.ProgressDisplay) -> Tuple[bytes, Tuple[str, ...]]:
    request = plan.request
    builder: "tensorrt.Builder" = trt.Builder(compat.logger_for(trt))
    network = compat.create_network(trt, builder, features)
    with open(request.onnx, "rb") as f:
        parser = compat.parse_onnx(trt, network, f.read(), request.onnx)
    config = builder.create_builder_config()
    compat.set_target(trt, config, request.compute_capability)
    compat.set_workspace(trt, config, features, request.workspace)
    flags = compat.set_precision(trt, config, features, request.fp16, request.int8)
    warning = compat.platform_lacks_fast(builder, request.fp16, request.int8)
    if warning:
        display.line(f"[build] warning: {warning}")
    if plan.calib is not None:
        flags += _keep_float_after(trt, network, config, LANDMARK_OUTPUT)
    if plan.onnx.has_qdq:
        flags += qdq_layers(trt, network, LANDMARK_OUTPUT)
    if plan.profile:
        profile = builder.create_optimization_profile()
        for name, shapes in plan.profile.items():
            profile.set_shape(name, shapes["min"], shapes["opt"], shapes["max"])  # type: ignore[arg-type]  # lists: Dims
        config.add_optimization_profile(profile)
    timing_cache = (request.timing_cache or default_timing_cache(features.tag, gpu)) if features.timing_cache else None
    if timing_cache:
        warning = compat.load_timing_cache(config, timing_cache)
        if warning:
            display.line(f"[build] {warning}")
    display.line(f"[build] {request.onnx} -> {request.precision}, {features.describe()}, {gpu.describe()}"
                 + (f", batch {request.batch}" if plan.profile else ""))
    finish = compat.attach_progress(trt, config, features, display)
    try:
        if plan.calib is not None:
            engine = _build_calibrated(trt, features, builder, network, config, plan, display)
        else:
            engine = compat.build_serialized(builder, network, config)
    finally:
        finish()
    if timing_cache:
        compat.save_timing_cache(config, timing_cache)
    del parser  # the parser owns the weights the network points at: keep it alive until here
    return engine, flags


def network_layers(trt: Any, network: "tensorrt.INetworkDefinition") -> Tuple[List["tensorrt.ILayer"], List[Layer]]:
    """The network's layers, and each described for edge/compile/precision.py (data tensors only, no constants)."""
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    constants = {layer.get_output(0).name for layer in layers if layer.type == trt.LayerType.CONSTANT}

    def names(tensors: Any) -> Tuple[str, ...]:
        return tuple(t.name for t in tensors if t is not None and t.name not in constants)

    described = [Layer(layer.name, layer.type == trt.LayerType.SOFTMAX,
                       names(layer.get_input(j) for j in range(layer.num_inputs)),
                       names(layer.get_output(j) for j in range(layer.num_outputs))) for layer in layers]
    return layers, described


def qdq_layers(trt: Any, network: "tensorrt.INetworkDefinition", tensor: str) -> Tuple[str, ...]:
    """A Q/DQ network as TensorRT parsed it: how many layers quantize, and that none of them sits where
    edge/compile/precision.py keeps float (a model quantized by another tool would lose its landmarks there)."""
    layers, described = network_layers(trt, network)
    kinds = (trt.LayerType.QUANTIZE, trt.LayerType.DEQUANTIZE)
    quantizing = {layer.name for layer in layers if layer.type in kinds}
    keep = float_layers(described, tensor)
    inside = sorted(quantizing.intersection(keep))
    if inside:
        raise ModelError(f"{len(inside)} Q/DQ layer(s) after '{tensor}' or in a soft-argmax head (e.g. {inside[0]}), "
                         "where INT8 moves the landmarks; quantize with `python -m edge.compile.quantize`, which keeps "
                         "them float")
    return (f"Q/DQ layers: {len(quantizing)}", f"float layers after '{tensor}' or in a soft-argmax head: {len(keep)}")


def _keep_float_after(trt: Any, network: "tensorrt.INetworkDefinition", config: "tensorrt.IBuilderConfig",
                      tensor: str) -> Tuple[str, ...]:
    """Implicit INT8 keeps in FP32 what the Q/DQ route keeps float (edge/compile/precision.py: the layers
    fed by `tensor`, and a soft-argmax head's last layers); nothing to do for a model without either."""
    layers, described = network_layers(trt, network)
    keep = set(float_layers(described, tensor))
    kept = 0
    for layer in layers:
        if layer.name not in keep:
            continue
        if all(layer.get_output(j).dtype == trt.float32 for j in range(layer.num_outputs)):  # not shape/index layers
            layer.precision = trt.float32
            for j in range(layer.num_outputs):
                layer.set_output_type(j, trt.float32)
            kept += 1
    if not kept:
        return ()
    config.set_flag(trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)
    return ("PREFER_PRECISION_CONSTRAINTS", f"FP32 layers after '{tensor}' or in a soft-argmax head: {kept}")


def _build_calibrated(trt: Any, features: compat.TrtFeatures, builder: "tensorrt.Builder",
                      network: "tensorrt.INetworkDefinition", config: "tensorrt.IBuilderConfig", plan: BuildPlan,
                      display: compat.ProgressDisplay) -> bytes:
    from edge.compile.trt_calibrator import calibration_batch, calibration_cache_path, make_entropy_calibrator
    from edge.runtime.cuda import shared_context

    calib = plan.calib
    assert calib is not None
    name = next(iter(plan.onnx.inputs))
    batch = calibration_batch(calib, plan.request.profile.opt)
    cache = calibration_cache_path(calib, Path(plan.request.onnx).stem, plan.onnx.sha256, features.tag)
    cuda = shared_context()  # the primary context TensorRT's runtime uses too, so device pointers are shared
    with cuda.active():
        calibrator = make_entropy_calibrator(trt, cuda.cuda, calib, batch, cache, display)
        config.int8_calibrator = calibrator
        if plan.profile:
            shape = [batch] + list(calib.crop_shape)
            calib_profile = builder.create_optimization_profile()
            calib_profile.set_shape(name, shape, shape, shape)  # type: ignore[arg-type]  # a list is a Dims
            config.set_calibration_profile(calib_profile)
        display.line(f"[calibrate] {calib.count} crops from {calib.folder}, batches of {batch}")
        return compat.build_serialized(builder, network, config)
