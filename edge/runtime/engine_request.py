"""What an engine is built from: the request (trtexec/Polygraphy vocabulary) and the batch profile.

A request is plain data, so it can be written into the sidecar and turned back into the exact
command that rebuilds the engine.
"""
from __future__ import annotations

import datetime
import shlex
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, List, Mapping, Optional, Tuple

from edge.errors import ConfigError
from edge.fileio import PROJECT_ROOT

ENGINES_DIR = PROJECT_ROOT / "engines"


@dataclass(frozen=True)
class BatchProfile:
    """Faces per ATPN call: TensorRT tunes kernels for `opt` and accepts any batch in [min, max]."""

    min: int
    opt: int
    max: int

    @classmethod
    def parse(cls, text: str) -> "BatchProfile":
        """'1:4:8' -> (1, 4, 8); a single 'N' is a fixed batch N:N:N."""
        parts = str(text).strip().split(":")
        try:
            values = [int(p) for p in parts]
        except ValueError:
            values = []
        if len(values) == 1:
            values = values * 3
        if len(values) != 3 or not 1 <= values[0] <= values[1] <= values[2]:
            raise ConfigError(f"--batch must be MIN:OPT:MAX with 1 <= MIN <= OPT <= MAX (e.g. 1:4:8) or one "
                              f"number, got {text!r}")
        return cls(*values)

    def __str__(self) -> str:
        return f"{self.min}:{self.opt}:{self.max}"


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


Shape = Tuple[Optional[int], ...]
ProfileShapes = Dict[str, Dict[str, List[int]]]  # input -> {"min": [...], "opt": [...], "max": [...]}


def profile_shapes(inputs: Mapping[str, Shape], batch: BatchProfile) -> ProfileShapes:
    """min/opt/max shapes for every input whose batch axis is dynamic; only axis 0 may be dynamic."""
    shapes: ProfileShapes = {}
    for name, shape in inputs.items():
        if all(d is not None and d >= 0 for d in shape):
            continue  # a static input needs no profile
        if any(d is None or d < 0 for d in shape[1:]):
            dims = ",".join("?" if d is None or d < 0 else str(d) for d in shape)
            raise ConfigError(f"input '{name}' has dynamic axes besides the batch ([{dims}]); re-export the ONNX "
                              "with fixed channel/height/width")
        rest = [int(d) for d in shape[1:]]  # type: ignore[arg-type]
        shapes[name] = {k: [v] + rest for k, v in (("min", batch.min), ("opt", batch.opt), ("max", batch.max))}
    return shapes


@dataclass(frozen=True)
class BuildRequest:
    """One engine to build. Field names follow build_engine.py's flags."""

    onnx: str
    fp16: bool = False
    int8: bool = False
    qdq: bool = False  # the ONNX already holds Q/DQ nodes (explicit quantization)
    calib: Optional[str] = None  # calibration folder (implicit INT8)
    batch: str = "1:4:8"
    workspace: Optional[int] = None  # MiB; None = TensorRT's default
    timing_cache: Optional[str] = None  # None = engines/timing.<library tag>.<gpu>.cache
    save_engine: Optional[str] = None  # None = engines/<stem>.<precision>[.b<batch>].<library tag>.<gpu>.engine
    compute_capability: Optional[str] = None  # "8.9": TensorRT-RTX builds for that GPU generation, no GPU needed
    rebuild: bool = False

    def __post_init__(self) -> None:
        BatchProfile.parse(self.batch)
        if self.qdq and not self.int8:
            raise ConfigError("--qdq needs --int8 (it says the INT8 scales come from the ONNX's Q/DQ nodes)")
        if self.int8 and not self.qdq and not self.calib:
            raise ConfigError("--int8 needs --calib DIR (a calibration set from `python -m edge.pipeline.calibration`) "
                              "or --qdq (an ONNX quantized by `python -m edge.compile.quantize`)")
        if self.calib and not (self.int8 and not self.qdq):
            raise ConfigError("--calib is used only with --int8 without --qdq (a Q/DQ ONNX carries its own scales)")
        if self.workspace is not None and self.workspace <= 0:
            raise ConfigError(f"--workspace must be a positive number of MiB, got {self.workspace}")

    @property
    def profile(self) -> BatchProfile:
        return BatchProfile.parse(self.batch)

    @property
    def precision(self) -> str:
        """'fp32', 'fp16', 'int8' (calibrated), 'qdq' (explicit); '-fp16' when INT8 may fall back to FP16."""
        base = "qdq" if self.qdq else "int8" if self.int8 else "fp16" if self.fp16 else "fp32"
        return base + ("-fp16" if self.int8 and self.fp16 else "")

    def command(self) -> str:
        """The build_engine.py command line that makes this engine again."""
        args = ["python", "build_engine.py", "--onnx", self.onnx]
        args += [f"--{name}" for name in ("fp16", "int8", "qdq") if getattr(self, name)]
        if self.calib:
            args += ["--calib", self.calib]
        args += ["--batch", self.batch]
        if self.workspace is not None:
            args += ["--workspace", str(self.workspace)]
        for flag, value in (("--timing-cache", self.timing_cache), ("--save-engine", self.save_engine),
                            ("--compute-capability", self.compute_capability)):
            if value:
                args += [flag, value]
        return " ".join(shlex.quote(a) for a in args + ["--rebuild"])

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BuildRequest":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
