"""The JSON written beside every engine: what built it, from what, for which TensorRT and GPU.

An engine runs only on the TensorRT version and GPU it was built for. The sidecar lets the runtime
refuse a mismatch in one line (with the command that rebuilds it) instead of crashing in
deserialisation, and lets the builder skip a build whose result already exists (the cache key).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Dict, Optional

from edge.runtime.gpu import GpuInfo
from edge.runtime.trt_compat import describe_library
from edge.runtime.engine_request import BuildRequest, ProfileShapes
from edge.fileio import file_sha256, write_atomic
from edge.errors import EngineError

FORMAT = 2  # 2: `tensorrt` is the library tag (trt10.3.0.30, trtrtx1.7.1.116), the GPU may be 'any of a compute capability'


def sidecar_path(engine_path: str) -> str:
    return engine_path + ".json"


@dataclass(frozen=True)
class CacheKey:
    """Everything that changes the engine's bytes; an existing engine with an equal key is reused."""

    onnx_sha256: str
    precision: str
    profile: ProfileShapes
    tensorrt: str  # library tag: trt10.3.0.30, trtrtx1.7.1.116
    gpu: GpuInfo
    calibration: Optional[str] = None  # fingerprint of the calibration set (implicit INT8 only)

    def mismatch(self, other: "CacheKey") -> Optional[str]:
        """None when `other` builds the same engine, else the first difference, as a short phrase."""
        checks = (
            (self.tensorrt == other.tensorrt,
             f"{describe_library(other.tensorrt)} built it, this is {describe_library(self.tensorrt)}"),
            (self.gpu == other.gpu, f"built for {other.gpu.describe()}, this is {self.gpu.describe()}"),
            (self.onnx_sha256 == other.onnx_sha256, "the ONNX changed since the build"),
            (self.precision == other.precision, f"built as {other.precision}, asked for {self.precision}"),
            (self.profile == other.profile, f"built for profile {other.profile}, asked for {self.profile}"),
            (self.calibration == other.calibration, "the calibration set changed since the build"),
        )
        return next((why for ok, why in checks if not ok), None)


@dataclass(frozen=True)
class Sidecar:
    key: CacheKey
    request: BuildRequest
    engine_bytes: int
    engine_sha256: str
    build_flags: tuple
    onnx_metadata: Dict[str, str] = field(default_factory=dict)  # the ONNX's custom metadata (atpn_spec ...)
    built_utc: str = ""
    build_seconds: float = 0.0

    def to_json(self) -> str:
        data = {
            "format": FORMAT,
            "tensorrt": self.key.tensorrt,
            "library": describe_library(self.key.tensorrt),
            "gpu": self.key.gpu.to_dict(),
            "precision": self.key.precision,
            "build_flags": list(self.build_flags),
            "onnx": {"path": self.request.onnx, "sha256": self.key.onnx_sha256, "metadata": self.onnx_metadata},
            "profile": self.key.profile,
            "calibration": self.key.calibration,
            "engine": {"bytes": self.engine_bytes, "sha256": self.engine_sha256},
            "built_utc": self.built_utc,
            "build_seconds": round(self.build_seconds, 2),
            "request": self.request.to_dict(),
            "command": self.request.command(),
        }
        return json.dumps(data, indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "Sidecar":
        data = json.loads(text)
        if data.get("format") != FORMAT:
            raise ValueError(f"sidecar format {data.get('format')!r}, expected {FORMAT}")
        key = CacheKey(onnx_sha256=data["onnx"]["sha256"], precision=data["precision"], profile=data["profile"],
                       tensorrt=data["tensorrt"], gpu=GpuInfo.from_dict(data["gpu"]), calibration=data["calibration"])
        return cls(key=key, request=BuildRequest.from_dict(data["request"]), engine_bytes=int(data["engine"]["bytes"]),
                   engine_sha256=data["engine"]["sha256"], build_flags=tuple(data["build_flags"]),
                   onnx_metadata=dict(data["onnx"]["metadata"]), built_utc=data["built_utc"],
                   build_seconds=float(data["build_seconds"]))


def write_sidecar(engine_path: str, sidecar: Sidecar) -> str:
    path = sidecar_path(engine_path)
    write_atomic(path, sidecar.to_json().encode())
    return path


def read_sidecar(engine_path: str) -> Sidecar:
    """The sidecar of `engine_path`; EngineError if it is missing or unreadable."""
    path = sidecar_path(engine_path)
    if not os.path.isfile(path):
        raise EngineError(f"{engine_path}: no sidecar {os.path.basename(path)}, so its TensorRT version and GPU are "
                          "unknown; build the engine with `python build_engine.py --onnx MODEL.onnx ...`")
    try:
        with open(path) as f:
            return Sidecar.from_json(f.read())
    except (ValueError, KeyError, TypeError) as exc:
        raise EngineError(f"{path}: unreadable sidecar ({type(exc).__name__}: {exc}); rebuild the engine with "
                          "`python build_engine.py --onnx MODEL.onnx ... --rebuild`") from exc


def check_engine(engine_path: str, tensorrt: str, gpu: GpuInfo) -> Sidecar:
    """Before deserialising: the engine file is the one the sidecar describes, for this library (tag) and GPU.

    Raises a one-line EngineError that ends with the exact command that rebuilds the engine.
    """
    if not os.path.isfile(engine_path):
        raise EngineError(f"{engine_path}: engine not found; build it with `python build_engine.py --onnx "
                          "MODEL.onnx --save-engine " + engine_path + "`")
    side = read_sidecar(engine_path)
    rebuild = side.request.command()
    why = runtime_mismatch(side, tensorrt, gpu)
    if why is None and (os.path.getsize(engine_path) != side.engine_bytes or file_sha256(engine_path) != side.engine_sha256):
        why = "the file is not the engine its sidecar describes (truncated, corrupt or replaced)"
    if why is not None:
        raise EngineError(f"{engine_path}: {why}; rebuild it with `{rebuild}`")
    return side


def runtime_mismatch(side: Sidecar, tensorrt: str, gpu: GpuInfo) -> Optional[str]:
    """Why this engine cannot run here (TensorRT library and version, or GPU), or None."""
    if side.key.tensorrt != tensorrt:
        return f"built with {describe_library(side.key.tensorrt)}, this is {describe_library(tensorrt)}"
    if not side.key.gpu.runs_on(gpu):
        return f"built for {side.key.gpu.describe()}, this is {gpu.describe()}"
    return None


def reusable(engine_path: str, key: CacheKey) -> Optional[str]:
    """None if the engine at `engine_path` was built from exactly `key` and is intact, else why it is not."""
    if not os.path.isfile(engine_path):
        return "no engine yet"
    try:
        side = read_sidecar(engine_path)
    except EngineError:
        return "its sidecar is missing or unreadable"
    why = key.mismatch(side.key)
    if why is None and os.path.getsize(engine_path) != side.engine_bytes:
        why = "the engine file does not match its sidecar"
    return why

