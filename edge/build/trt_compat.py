"""The few places where TensorRT 8.5 (JetPack 5.1), 8.6/10.3 (JetPack 6) and 10.x/11 (x86) differ.

Everything else in edge.build calls TensorRT through one code path. Features are detected from the
module's attributes where possible (robust to point releases), from the version where not.
"""
from __future__ import annotations

import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple

from edge.errors import EngineError, ModelError
from edge.fileio import write_atomic

INSTALL_HINT = ("on Jetson TensorRT comes with JetPack (`sudo apt install python3-libnvinfer`); "
                "on x86 `pip install tensorrt`")
PYCUDA_HINT = "`pip install pycuda` (on Jetson with CUDA on the PATH: `export PATH=/usr/local/cuda/bin:$PATH` first)"
MODELOPT_FP16 = "python -m modelopt.onnx.autocast --onnx_path MODEL.onnx --output_path MODEL.fp16.onnx"


def import_tensorrt() -> Any:
    """The tensorrt module, or a one-line EngineError saying how to install it."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise EngineError(f"TensorRT's Python package is not installed ({exc}): {INSTALL_HINT}") from exc
    return trt


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


@dataclass(frozen=True, order=True)
class TrtVersion:
    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> "TrtVersion":
        """'8.5.2.2', '10.3.0', '11.0.0.post1' -> TrtVersion; a garbled string is a ValueError."""
        m = re.match(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?", str(text))
        if not m:
            raise ValueError(f"not a TensorRT version: {text!r}")
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True)
class TrtFeatures:
    """What the installed TensorRT offers, decided once."""

    version: TrtVersion
    needs_explicit_batch_flag: bool  # < 10: networks are implicit-batch unless asked; 10 ignores it, 11 removed it
    precision_flags: bool  # BuilderFlag.FP16/INT8 exist (removed in 11: strongly typed networks only)
    calibrators: bool  # IInt8EntropyCalibrator2 + int8_calibrator exist (removed in 11)
    memory_pools: bool  # set_memory_pool_limit (8.4+); max_workspace_size before (removed in 10)
    progress_monitor: bool  # IProgressMonitor (8.6+)

    @property
    def strongly_typed_only(self) -> bool:
        return not self.precision_flags


def features_of(trt: Any) -> TrtFeatures:
    version = TrtVersion.parse(getattr(trt, "__version__", "0.0"))
    flag = getattr(trt, "BuilderFlag", None)
    config_cls = getattr(trt, "IBuilderConfig", None)
    return TrtFeatures(
        version=version,
        needs_explicit_batch_flag=version.major < 10,
        precision_flags=flag is not None and hasattr(flag, "FP16") and hasattr(flag, "INT8"),
        calibrators=hasattr(trt, "IInt8EntropyCalibrator2") and hasattr(config_cls, "int8_calibrator"),
        memory_pools=hasattr(config_cls, "set_memory_pool_limit"),
        progress_monitor=hasattr(trt, "IProgressMonitor") and hasattr(config_cls, "progress_monitor"),
    )


def check_precision(features: TrtFeatures, fp16: bool, int8: bool, qdq: bool) -> None:
    """Refuse, before any work, a precision this TensorRT cannot build, saying what to do instead."""
    v = features.version
    if features.strongly_typed_only and fp16:
        raise EngineError(f"TensorRT {v} builds strongly typed networks only (no FP16 builder flag): convert the "
                          f"ONNX to FP16 first (`{MODELOPT_FP16}`) and build that without --fp16")
    if int8 and not qdq and not features.calibrators:
        raise EngineError(f"TensorRT {v} has no INT8 calibrators: make a Q/DQ ONNX with `python -m "
                          "edge.build.quantize --onnx MODEL.onnx --calib DIR` and build it with --int8 --qdq")


def create_network(trt: Any, builder: Any, features: TrtFeatures) -> Any:
    """An explicit-batch network on every version (the only kind ONNX models use)."""
    flags = 0
    if features.needs_explicit_batch_flag:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    return builder.create_network(flags)


def set_workspace(trt: Any, config: Any, features: TrtFeatures, mib: Optional[int]) -> None:
    """Cap the builder's scratch memory; None keeps TensorRT's default (all free device memory in 10+)."""
    if mib is None:
        return
    size = int(mib) << 20
    if features.memory_pools:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, size)
    else:
        config.max_workspace_size = size


def set_precision(trt: Any, config: Any, features: TrtFeatures, fp16: bool, int8: bool) -> Tuple[str, ...]:
    """Builder flags for the precision (none on TRT 11, where the ONNX's own types decide); returns their names."""
    if features.strongly_typed_only:
        return ()
    names = []
    for wanted, name in ((fp16, "FP16"), (int8, "INT8")):
        if wanted:
            config.set_flag(getattr(trt.BuilderFlag, name))
            names.append(name)
    return tuple(names)


def platform_lacks_fast(builder: Any, fp16: bool, int8: bool) -> Optional[str]:
    """A warning when the GPU has no fast FP16/INT8 (the attributes are gone in 11: nothing to warn)."""
    for wanted, attr, name in ((fp16, "platform_has_fast_fp16", "FP16"), (int8, "platform_has_fast_int8", "INT8")):
        if wanted and getattr(builder, attr, True) is False:
            return f"this GPU has no fast {name}: the engine will build but may not be faster than FP32"
    return None


def load_timing_cache(config: Any, path: Optional[str]) -> Optional[str]:
    """Attach a timing cache (read from `path` if it exists); returns a warning if the file was unusable."""
    blob = b""
    if path and os.path.isfile(path):
        with open(path, "rb") as f:
            blob = f.read()
    cache = config.create_timing_cache(blob)
    if cache is not None and config.set_timing_cache(cache, False):
        return None
    # A cache from another TensorRT/GPU: start a fresh one rather than fail the build.
    config.set_timing_cache(config.create_timing_cache(b""), False)
    return f"timing cache {path} is from another TensorRT or GPU; starting a new one"


def save_timing_cache(config: Any, path: str) -> None:
    cache = config.get_timing_cache()
    if cache is not None:
        write_atomic(path, bytes(cache.serialize()))


def build_serialized(builder: Any, network: Any, config: Any) -> bytes:
    """build_serialized_network on every version (build_engine was removed in 10)."""
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineError("TensorRT could not build the engine (its log above says why); try a larger --workspace "
                          "or a wider --batch profile")
    return bytes(plan)


def parse_onnx(trt: Any, network: Any, logger: Any, onnx_bytes: bytes, path: str) -> Any:
    """Parse into `network`; every parser error is listed, one per line, after a one-line headline."""
    parser = trt.OnnxParser(network, logger)
    if parser.parse(onnx_bytes, path):
        return parser
    errors = [str(parser.get_error(i)).strip().replace("\n", " ") for i in range(parser.num_errors)]
    lines = "\n".join(f"  {e}" for e in errors) or "  (the parser gave no detail)"
    raise ModelError(f"{path}: TensorRT {trt.__version__}'s ONNX parser rejected it ({len(errors)} error(s)):\n{lines}")


class ProgressDisplay:
    """Build progress on stderr: TensorRT's phases where it reports them (8.6+), else a heartbeat."""

    def __init__(self, stream: Any = None, heartbeat_s: float = 10.0) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.heartbeat_s = heartbeat_s
        self._lock = threading.Lock()
        self._depth = {}  # phase -> nesting depth
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


def attach_progress(trt: Any, config: Any, features: TrtFeatures, display: ProgressDisplay) -> Callable[[], None]:
    """Report build phases; returns the function that ends the display (call it after the build)."""
    if not features.progress_monitor:
        display.start_heartbeat("building (TensorRT < 8.6 reports no progress)")
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
