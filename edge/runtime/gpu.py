"""Which GPU is this? Name and compute capability from the CUDA driver, through ctypes.

The driver API (libcuda) is on every machine that can run TensorRT, Jetson included, so engine
names and sidecars need neither pycuda nor nvidia-smi (which Jetson lacks).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import re
from dataclasses import dataclass
from typing import Any, Dict

from edge.errors import ConfigError, EngineError

_CC_MAJOR, _CC_MINOR = 75, 76  # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_{MAJOR,MINOR}
_LIBS = ("libcuda.so.1", "libcuda.so", "nvcuda.dll")


@dataclass(frozen=True)
class GpuInfo:
    """A GPU an engine is built for; an empty name means any GPU of that compute capability (an engine
    TensorRT-RTX built ahead of time with --compute-capability runs on every such GPU)."""

    name: str
    compute_capability: str  # "8.7"

    @classmethod
    def any_of(cls, compute_capability: str) -> "GpuInfo":
        if not re.match(r"^\d+\.\d+$", compute_capability):
            raise ConfigError(f"--compute-capability must be MAJOR.MINOR (e.g. 8.9), got {compute_capability!r}")
        return cls("", compute_capability)

    def slug(self) -> str:
        """A file-name-safe tag: 'NVIDIA GeForce RTX 4090' / 8.9 -> 'geforce-rtx-4090-sm89'; any GPU -> 'sm89'."""
        sm = f"sm{self.compute_capability.replace('.', '')}"
        if not self.name:
            return sm
        name = re.sub(r"^nvidia\s+", "", self.name.strip(), flags=re.IGNORECASE)
        name = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "gpu"
        return f"{name}-{sm}"

    def describe(self) -> str:
        if not self.name:
            return f"any GPU of compute {self.compute_capability}"
        return f"{self.name} (compute {self.compute_capability})"

    def runs_on(self, gpu: "GpuInfo") -> bool:
        """Whether an engine built for self runs on `gpu`: the same GPU, or any of its compute capability."""
        return self == gpu or (not self.name and self.compute_capability == gpu.compute_capability)

    def to_dict(self) -> Dict[str, str]:
        return {"name": self.name, "compute_capability": self.compute_capability}

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "GpuInfo":
        return cls(str(data["name"]), str(data["compute_capability"]))


def query_gpu(index: int = 0) -> GpuInfo:
    """GPU `index` as the CUDA driver sees it; EngineError (one line) without a driver or a GPU."""
    lib = _load_driver()
    _check(lib.cuInit(0), "cuInit")
    count = ctypes.c_int(0)
    _check(lib.cuDeviceGetCount(ctypes.byref(count)), "cuDeviceGetCount")
    if count.value <= index:
        raise EngineError(f"no CUDA GPU #{index} (the driver sees {count.value}); TensorRT needs an NVIDIA GPU")
    dev = ctypes.c_int(0)
    _check(lib.cuDeviceGet(ctypes.byref(dev), index), "cuDeviceGet")
    name = ctypes.create_string_buffer(256)
    _check(lib.cuDeviceGetName(name, len(name), dev), "cuDeviceGetName")
    major, minor = ctypes.c_int(0), ctypes.c_int(0)
    _check(lib.cuDeviceGetAttribute(ctypes.byref(major), _CC_MAJOR, dev), "cuDeviceGetAttribute")
    _check(lib.cuDeviceGetAttribute(ctypes.byref(minor), _CC_MINOR, dev), "cuDeviceGetAttribute")
    return GpuInfo(name.value.decode(errors="replace"), f"{major.value}.{minor.value}")


def _load_driver() -> Any:
    names = list(_LIBS)
    found = ctypes.util.find_library("cuda")
    if found:
        names.append(found)
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise EngineError("no CUDA driver (libcuda) found: TensorRT needs an NVIDIA GPU with its driver "
                      "(on Jetson it comes with JetPack)")


def _check(status: int, call: str) -> None:
    if status != 0:
        hint = " (no GPU visible: check CUDA_VISIBLE_DEVICES and the driver)" if status in (100, 101) else ""
        raise EngineError(f"CUDA driver call {call} failed with error {status}{hint}")
