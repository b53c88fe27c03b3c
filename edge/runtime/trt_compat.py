"""The few places where the TensorRT libraries we support differ, decided from what the module offers.

Full TensorRT 8.5 (JetPack 5.1), 8.6/10.3 (JetPack 6), 10.x/11 (x86, data-centre GPUs) and
TensorRT-RTX (module `tensorrt_rtx`, GeForce/RTX PRO GPUs, builds ahead of time without a GPU)
share one code path in edge.compile and edge.runtime. Every difference is detected from the module's
attributes, never from a version number; the library's name and version only label engines.
"""
from __future__ import annotations

import importlib
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Tuple

from edge.errors import ConfigError, EngineError, ModelError
from edge.fileio import write_atomic

if TYPE_CHECKING:  # the tensorrt-stubs package (TensorRT 10): `make lint` type-checks our calls against it
    import tensorrt

FULL, RTX = "tensorrt", "tensorrt_rtx"  # the two modules, in the order they are tried
LIBRARY_ENV = "ATPN_TENSORRT"  # set to tensorrt_rtx to use TensorRT-RTX where both are installed
_LABELS = {FULL: ("trt", "TensorRT"), RTX: ("trtrtx", "TensorRT-RTX")}
INSTALL_HINT = ("on Jetson TensorRT comes with JetPack (`sudo apt install python3-libnvinfer`; a venv sees it only "
                "if made with `python3 -m venv --system-site-packages`); on x86 `pip install tensorrt`; on a "
                "GeForce/RTX PC `pip install tensorrt-rtx-cu12`")
PYCUDA_HINT = ("`pip install pycuda` (the TensorRT runtime and GPU pre-processing need it; on Jetson put CUDA on the "
               "PATH first: `export PATH=/usr/local/cuda/bin:$PATH`)")
MODELOPT_FP16 = "python -m modelopt.onnx.autocast --onnx_path MODEL.onnx --output_path MODEL.fp16.onnx"


def import_tensorrt() -> Any:
    """Full TensorRT, else TensorRT-RTX ($ATPN_TENSORRT picks one); a one-line EngineError if neither loads."""
    wanted = os.environ.get(LIBRARY_ENV, "")
    if wanted and wanted not in _LABELS:
        raise ConfigError(f"{LIBRARY_ENV}={wanted!r}: must be {FULL} or {RTX} (or unset to try both)")
    problems = []
    for name in (wanted,) if wanted else (FULL, RTX):
        try:
            trt = importlib.import_module(name)
        except ImportError as exc:
            problems.append(f"{name}: {exc}")
            continue
        if hasattr(trt, "Builder"):  # a folder of type stubs also imports, as an empty namespace package
            return trt
        problems.append(f"{name}: the module has no Builder (type stubs only?)")
    raise EngineError(f"no TensorRT Python package loads ({'; '.join(problems)}): {INSTALL_HINT}")


def library_tag(module_name: str, version: str) -> str:
    """What engine names and sidecars say built an engine: 'trt10.3.0.30', 'trtrtx1.7.1.116'."""
    return _LABELS.get(module_name, (module_name, ""))[0] + version


def describe_library(tag: str) -> str:
    """'trtrtx1.7.1.116' -> 'TensorRT-RTX 1.7.1.116' (for messages)."""
    for prefix, name in sorted(_LABELS.values(), key=lambda label: -len(label[0])):
        if tag.startswith(prefix) and tag[len(prefix):][:1].isdigit():
            return f"{name} {tag[len(prefix):]}"
    return tag


_loggers: Dict[str, Any] = {}
_loggers_lock = threading.Lock()


def logger_for(trt: Any) -> "tensorrt.ILogger":
    """The process's one logger per TensorRT library (TensorRT expects one; builders and runtimes share it)."""
    with _loggers_lock:
        if trt.__name__ not in _loggers:
            _loggers[trt.__name__] = trt.Logger(trt.Logger.WARNING)
        return _loggers[trt.__name__]


def import_pycuda() -> Any:
    """pycuda.driver, for the TensorRT runtime's buffers and stream, GPU crops and INT8 calibration.

    A pycuda that is installed but does not load was built against another CUDA (an undefined
    driver symbol, say): that gets its own message, since installing it again changes nothing.
    """
    try:
        import pycuda.driver as cuda
    except ModuleNotFoundError as exc:
        raise EngineError(f"pycuda is not installed ({exc}); the GPU path needs it: {PYCUDA_HINT}") from exc
    except ImportError as exc:
        raise EngineError(f"pycuda is installed but does not load ({exc}); rebuild it against this machine's "
                          f"CUDA: `pip install --force-reinstall --no-cache-dir --no-binary pycuda pycuda`") from exc
    return cuda


@dataclass(frozen=True)
class TrtFeatures:
    """What the installed TensorRT library offers, decided once from its attributes."""

    library: str  # module name: "tensorrt" or "tensorrt_rtx"
    version: str  # the module's full __version__
    explicit_batch_flag: bool  # NetworkDefinitionCreationFlag.EXPLICIT_BATCH exists (< 10 needs it; gone in 11/RTX)
    precision_flags: bool  # BuilderFlag.FP16/INT8 exist (not in 11 or RTX: strongly typed networks only)
    calibrators: bool  # IInt8EntropyCalibrator2 + int8_calibrator exist (not in 11 or RTX)
    memory_pools: bool  # set_memory_pool_limit (8.4+); max_workspace_size before (removed in 10)
    progress_monitor: bool  # IProgressMonitor (9.0+)
    timing_cache: bool  # False on TensorRT-RTX, where timing-cache calls are no-ops (it builds without timing)
    target_compute_capability: bool  # config.set_compute_capability: builds for a GPU it need not see (RTX)

    @property
    def strongly_typed_only(self) -> bool:
        return not self.precision_flags

    @property
    def tag(self) -> str:
        return library_tag(self.library, self.version)

    def describe(self) -> str:
        return describe_library(self.tag)


def features_of(trt: Any) -> TrtFeatures:
    flag = getattr(trt, "BuilderFlag", None)
    config_cls = getattr(trt, "IBuilderConfig", None)
    network_flags = getattr(trt, "NetworkDefinitionCreationFlag", None)
    return TrtFeatures(
        library=getattr(trt, "__name__", FULL),
        version=str(getattr(trt, "__version__", "unknown")),
        explicit_batch_flag=hasattr(network_flags, "EXPLICIT_BATCH"),
        precision_flags=flag is not None and hasattr(flag, "FP16") and hasattr(flag, "INT8"),
        calibrators=hasattr(trt, "IInt8EntropyCalibrator2") and hasattr(config_cls, "int8_calibrator"),
        memory_pools=hasattr(config_cls, "set_memory_pool_limit"),
        progress_monitor=hasattr(trt, "IProgressMonitor") and hasattr(config_cls, "progress_monitor"),
        timing_cache=hasattr(config_cls, "create_timing_cache") and getattr(trt, "__name__", FULL) != RTX,
        target_compute_capability=hasattr(config_cls, "set_compute_capability") and hasattr(trt, "ComputeCapability"),
    )


def check_precision(features: TrtFeatures, fp16: bool, int8: bool, qdq: bool) -> None:
    """Refuse, before any work, a precision this TensorRT cannot build, saying what to do instead."""
    lib = features.describe()
    if features.strongly_typed_only and fp16:
        raise EngineError(f"{lib} builds strongly typed networks only (no FP16 builder flag): convert the "
                          f"ONNX to FP16 first (`{MODELOPT_FP16}`) and build that without --fp16")
    if int8 and not qdq and not features.calibrators:
        raise EngineError(f"{lib} has no INT8 calibrators: make a Q/DQ ONNX with `python -m "
                          "edge.compile.quantize --onnx MODEL.onnx --calib DIR` and build it with --int8 --qdq")


def create_network(trt: Any, builder: "tensorrt.Builder", features: TrtFeatures) -> "tensorrt.INetworkDefinition":
    """An explicit-batch network everywhere (the only kind ONNX models use): the flag only where it exists."""
    flags = 0
    if features.explicit_batch_flag:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    return builder.create_network(flags)


def set_target(trt: Any, config: "tensorrt.IBuilderConfig", compute_capability: Optional[str]) -> None:
    """Build for `compute_capability` ("8.9") instead of the GPU present (TensorRT-RTX; no GPU needed)."""
    if compute_capability is None:
        return
    member = getattr(trt.ComputeCapability, "SM" + compute_capability.replace(".", ""), None)
    if member is None:
        offered = sorted(n[2:-1] + "." + n[-1] for n in dir(trt.ComputeCapability) if n[:2] == "SM" and n[2:].isdigit())
        raise ConfigError(f"--compute-capability {compute_capability}: {features_of(trt).describe()} builds for "
                          f"{', '.join(offered)}")
    config.num_compute_capabilities = 1  # type: ignore[attr-defined]  # TensorRT-RTX API, not in the TRT 10 stubs
    config.set_compute_capability(member, 0)  # type: ignore[attr-defined]


def set_workspace(trt: Any, config: "tensorrt.IBuilderConfig", features: TrtFeatures, mib: Optional[int]) -> None:
    """Cap the builder's scratch memory; None keeps TensorRT's default (all free device memory in 10+)."""
    if mib is None:
        return
    size = int(mib) << 20
    if features.memory_pools:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, size)
    else:
        setattr(config, "max_workspace_size", size)  # TensorRT < 8.4 (gone from 10's API)


def set_precision(trt: Any, config: "tensorrt.IBuilderConfig", features: TrtFeatures, fp16: bool,
                  int8: bool) -> Tuple[str, ...]:
    """Builder flags for the precision (none where networks are strongly typed: the ONNX's own types decide)."""
    if features.strongly_typed_only:
        return ()
    names = []
    for wanted, name in ((fp16, "FP16"), (int8, "INT8")):
        if wanted:
            config.set_flag(getattr(trt.BuilderFlag, name))
            names.append(name)
    return tuple(names)


def platform_lacks_fast(builder: "tensorrt.Builder", fp16: bool, int8: bool) -> Optional[str]:
    """A warning when the GPU has no fast FP16/INT8 (the attributes are gone in 11 and RTX: nothing to warn)."""
    for wanted, attr, name in ((fp16, "platform_has_fast_fp16", "FP16"), (int8, "platform_has_fast_int8", "INT8")):
        if wanted and getattr(builder, attr, True) is False:
            return f"this GPU has no fast {name}: the engine will build but may not be faster than FP32"
    return None


def load_timing_cache(config: "tensorrt.IBuilderConfig", path: str) -> Optional[str]:
    """Attach a timing cache (read from `path` if it exists); returns a warning if the file was unusable."""
    blob = b""
    if os.path.isfile(path):
        with open(path, "rb") as f:
            blob = f.read()
    cache = config.create_timing_cache(blob)
    if cache is not None and config.set_timing_cache(cache, False):
        return None
    # A cache from another TensorRT/GPU: start a fresh one rather than fail the build.
    config.set_timing_cache(config.create_timing_cache(b""), False)
    return f"timing cache {path} is from another TensorRT or GPU; starting a new one"


def save_timing_cache(config: "tensorrt.IBuilderConfig", path: str) -> None:
    cache = config.get_timing_cache()
    if cache is not None:
        write_atomic(path, bytes(cache.serialize()))


def build_serialized(builder: "tensorrt.Builder", network: "tensorrt.INetworkDefinition",
                     config: "tensorrt.IBuilderConfig") -> bytes:
    """build_serialized_network on every version (build_engine was removed in 10)."""
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineError("TensorRT could not build the engine (its log above says why); try a larger --workspace "
                          "or a wider --batch profile")
    return bytes(plan)


def parse_onnx(trt: Any, network: "tensorrt.INetworkDefinition", onnx_bytes: bytes, path: str) -> "tensorrt.OnnxParser":
    """Parse into `network`; every parser error is listed, one per line, after a one-line headline."""
    parser: "tensorrt.OnnxParser" = trt.OnnxParser(network, logger_for(trt))
    if parser.parse(onnx_bytes, path):
        return parser
    errors = [str(parser.get_error(i)).strip().replace("\n", " ") for i in range(parser.num_errors)]
    lines = "\n".join(f"  {e}" for e in errors) or "  (the parser gave no detail)"
    raise ModelError(f"{path}: {features_of(trt).describe()}'s ONNX parser rejected it ({len(errors)} error(s)):\n"
                     f"{lines}")


class ProgressDisplay:
    """Build progress on stderr: TensorRT's phases where it reports them (9.0+), else a heartbeat."""

    def __init__(self, stream: Any = None, heartbeat_s: float = 10.0) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.heartbeat_s = heartbeat_s
        self._lock = threading.Lock()
        self._depth: Dict[str, int] = {}  # phase -> nesting depth
        self._stop = threading.Event()
        self._thread = None  # type: Optional[threading.Thread]

    def line(self, text: str, transient: bool = False) -> None:
        with self._lock:
            if self.tty:
                self.stream.write("\r\033[K" + text + ("" if transient else "\n"))
            elif not transient:
                self.stream.write(text + "\n")
            self.stream.flush()

    def phase_start(self, name: str, parent: Optional[str], steps: int) -> None:
        depth = self._depth.get(parent, -1) + 1 if parent else 0
        self._depth[name] = depth
        if depth <= 1:  # deeper phases are per-layer noise
            self.line(f"[build] {'  ' * depth}{name} ({steps} step{'s' if steps != 1 else ''})")

    def step_complete(self, name: str, step: int) -> bool:
        if self._depth.get(name, 0) <= 1:
            self.line(f"[build] {name}: {step + 1}", transient=True)
        return True  # False would cancel the build

    def phase_finish(self, name: str) -> None:
        self._depth.pop(name, None)

    def start_heartbeat(self, what: str) -> None:
        """For TensorRT without a progress monitor: one line every heartbeat_s so a long build looks alive."""
        t0 = time.monotonic()

        def beat() -> None:
            while not self._stop.wait(self.heartbeat_s):
                self.line(f"[build] {what}: {time.monotonic() - t0:.0f} s", transient=self.tty)

        self._thread = threading.Thread(target=beat, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def attach_progress(trt: Any, config: "tensorrt.IBuilderConfig", features: TrtFeatures,
                    display: ProgressDisplay) -> Callable[[], None]:
    """Report build phases; returns the function that ends the display (call it after the build)."""
    if not features.progress_monitor:
        display.start_heartbeat(f"building ({features.describe()} has no progress monitor, which came in 9.0)")
        return display.stop

    class _Monitor(trt.IProgressMonitor):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name: str, parent_phase: Optional[str], num_steps: int) -> None:
            display.phase_start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            return display.step_complete(phase_name, step)

        def phase_finish(self, phase_name: str) -> None:
            display.phase_finish(phase_name)

    monitor = _Monitor()
    config.progress_monitor = monitor

    def finish(_keep_alive: Any = monitor) -> None:  # TensorRT holds no Python reference to the monitor
        display.stop()

    return finish
