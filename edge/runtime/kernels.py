"""CUDA C source -> a CUBIN for the device's exact SM -> a pycuda function, with no nvcc on the PATH.

pycuda's SourceModule runs nvcc from the PATH, which a stock JetPack (nvcc in /usr/local/cuda/bin)
and a pip-TensorRT x86 machine (no toolkit) lack. Here NVRTC is tried first (in process, via ctypes:
JetPack ships it, pip has it), then nvcc wherever a toolkit is. The target is SASS for the device's
own `sm_XY`, never PTX: PTX from a newer toolkit (CUDA 13) does not load on an older driver (JetPack
5's CUDA 11.4). Compiled CUBINs are cached per source, SM and compiler, so only the first start
compiles. Compiling needs no GPU (tests build for sm_87/sm_89 on any machine); loading does.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import cached_property
from typing import Any, List, Optional, Sequence, Tuple, Union

from edge.errors import EngineError
from edge.fileio import write_atomic
from edge.runtime.cuda import CudaContext

NVRTC_NAMES = ("libnvrtc.so", "libnvrtc.so.12", "libnvrtc.so.13", "libnvrtc.so.11.2")
SYSTEM_CUDA = "/usr/local/cuda"  # also /usr/local/cuda-X.Y, newest first
TOOLKIT_LIB_DIRS = ("lib64", "targets/aarch64-linux/lib", "targets/x86_64-linux/lib")
PIP_NVRTC_DIRS = ("nvidia/cuda_nvrtc/lib", "nvidia/cu13/lib")  # nvidia-cuda-nvrtc-cu12, CUDA 13 wheels
INSTALL_HINT = ("install the CUDA toolkit's NVRTC (JetPack has it in /usr/local/cuda/lib64; on x86 "
                "`pip install nvidia-cuda-nvrtc-cu12`) or set CUDA_HOME to the toolkit's folder")
ELF_MAGIC = b"\x7fELF"
NVRTC_ERROR_COMPILATION = 6  # the source is at fault; any other failure is the compiler's
LOG_CHARS = 800


class _Unusable(Exception):
    """This compiler cannot build for this SM (too old, too new, broken): try the next one."""


def one_line(log: str) -> str:
    """A compiler log as one line (our errors are one line), cut where it gets long."""
    text = " | ".join(" ".join(line.split()) for line in log.splitlines() if line.strip())
    return text if len(text) <= LOG_CHARS else text[:LOG_CHARS] + " ..."


def device_arch(device: Any) -> str:
    """'sm_87' for a pycuda Device of compute capability 8.7."""
    major, minor = device.compute_capability()
    return f"sm_{major}{minor}"


def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "atpn-edge", "kernels")


def _newest_first(homes: Sequence[str]) -> List[str]:
    """cuda-12.6 before cuda-11.4, libnvrtc.so.12 before libnvrtc.so.11.2 (numerically: 12.10 after 12.9)."""
    def version(path: str) -> Tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", os.path.basename(path)))
    return sorted(homes, key=version, reverse=True)


def _unique(items: Sequence[str]) -> List[str]:
    return list(dict.fromkeys(i for i in items if i))


@dataclass(frozen=True)
class SearchPath:
    """Where compilers are looked for. `from_environment` is the real one; tests point it elsewhere."""

    path: str  # PATH, for nvcc
    cuda_homes: Tuple[str, ...]  # toolkit folders: bin/nvcc, lib64/libnvrtc.so*
    site_dirs: Tuple[str, ...]  # site-packages, for pip's NVRTC wheels
    nvrtc_names: Tuple[str, ...]  # sonames for the dynamic loader (LD_LIBRARY_PATH, ldconfig)

    @classmethod
    def from_environment(cls) -> "SearchPath":
        homes = [os.environ.get("CUDA_HOME", ""), os.environ.get("CUDA_PATH", ""), SYSTEM_CUDA]
        homes += _newest_first(glob.glob(SYSTEM_CUDA + "-*"))
        sites = [p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages")]
        names = list(NVRTC_NAMES) + [ctypes.util.find_library("nvrtc") or ""]
        return cls(os.environ.get("PATH", ""), tuple(_unique(homes)), tuple(_unique(sites)), tuple(_unique(names)))

    def nvrtc_dirs(self) -> List[str]:
        return _unique([os.path.join(h, d) for h in self.cuda_homes for d in TOOLKIT_LIB_DIRS]
                       + [os.path.join(s, d) for s in self.site_dirs for d in PIP_NVRTC_DIRS])

    def nvcc_paths(self) -> List[str]:
        on_path = shutil.which("nvcc", path=self.path)
        return _unique([on_path or ""] + [os.path.join(h, "bin", "nvcc") for h in self.cuda_homes])

    def describe(self) -> str:
        return (f"no NVRTC ({', '.join(self.nvrtc_names)} by name; libnvrtc.so* in {', '.join(self.nvrtc_dirs())}) "
                f"and no nvcc (on PATH; in {', '.join(os.path.join(h, 'bin') for h in self.cuda_homes)})")


class Nvrtc:
    """NVRTC through ctypes: no toolkit install, no subprocess, no temporary files."""

    kind = "nvrtc"

    def __init__(self, lib: ctypes.CDLL, where: str) -> None:
        self.lib = lib
        self.where = where
        p, i, size = ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.POINTER(ctypes.c_size_t)
        strings = ctypes.POINTER(ctypes.c_char_p)
        for name, args in (("nvrtcVersion", [ctypes.POINTER(i), ctypes.POINTER(i)]),
                           ("nvrtcCreateProgram", [p, ctypes.c_char_p, ctypes.c_char_p, i, strings, strings]),
                           ("nvrtcCompileProgram", [ctypes.c_void_p, i, strings]),
                           ("nvrtcGetCUBINSize", [ctypes.c_void_p, size]),
                           ("nvrtcGetCUBIN", [ctypes.c_void_p, ctypes.c_char_p]),
                           ("nvrtcGetProgramLogSize", [ctypes.c_void_p, size]),
                           ("nvrtcGetProgramLog", [ctypes.c_void_p, ctypes.c_char_p]),
                           ("nvrtcDestroyProgram", [p])):
            fn = getattr(lib, name)  # AttributeError: an NVRTC too old for CUBIN output (< 11.1)
            fn.argtypes, fn.restype = args, ctypes.c_int
        lib.nvrtcGetErrorString.argtypes, lib.nvrtcGetErrorString.restype = [ctypes.c_int], ctypes.c_char_p
        major, minor = ctypes.c_int(), ctypes.c_int()
        self._check(lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "nvrtcVersion")
        self.version = f"{major.value}.{minor.value}"
        self.label = f"NVRTC {self.version} ({where})"
        self.identity = f"nvrtc {self.version} {where}"

    def _check(self, status: int, call: str) -> None:
        if status != 0:
            raise _Unusable(f"{call}: {self.lib.nvrtcGetErrorString(status).decode(errors='replace')}")

    def compile(self, source: str, arch: str) -> bytes:
        prog = ctypes.c_void_p()
        self._check(self.lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), b"kernel.cu", 0, None, None),
                    "nvrtcCreateProgram")
        try:
            options = (ctypes.c_char_p * 1)(f"--gpu-architecture={arch}".encode())
            status = self.lib.nvrtcCompileProgram(prog, 1, options)
            if status == NVRTC_ERROR_COMPILATION:
                raise EngineError(f"{self.label} could not compile the kernel for {arch}: {one_line(self._log(prog))}")
            if status != 0:
                raise _Unusable(f"{self.label} cannot build for {arch}: {one_line(self._log(prog))}")
            size = ctypes.c_size_t()
            self._check(self.lib.nvrtcGetCUBINSize(prog, ctypes.byref(size)), "nvrtcGetCUBINSize")
            cubin = ctypes.create_string_buffer(size.value)
            self._check(self.lib.nvrtcGetCUBIN(prog, cubin), "nvrtcGetCUBIN")
            return cubin.raw
        finally:
            self.lib.nvrtcDestroyProgram(ctypes.byref(prog))

    def _log(self, prog: ctypes.c_void_p) -> str:
        size = ctypes.c_size_t()
        if self.lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size)) != 0:
            return "(no log)"
        log = ctypes.create_string_buffer(size.value)
        self.lib.nvrtcGetProgramLog(prog, log)
        return log.value.decode(errors="replace")


class Nvcc:
    """The toolkit's nvcc, run by its real path: through a symlink it finds neither nvcc.profile nor headers."""

    kind = "nvcc"

    def __init__(self, path: str) -> None:
        self.path = path
        self.exe = os.path.realpath(path)

    def _run(self, args: List[str], cwd: Optional[str] = None) -> subprocess.CompletedProcess:
        try:
            return subprocess.run([self.exe] + args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  universal_newlines=True)
        except OSError as exc:  # not a binary for this machine, say
            raise _Unusable(f"{self.path} does not run ({exc})") from exc

    @cached_property
    def version_text(self) -> str:
        done = self._run(["--version"])
        if done.returncode != 0:
            raise _Unusable(f"{self.path} --version failed: {one_line(done.stdout)}")
        return done.stdout.strip()

    @property
    def label(self) -> str:
        release = re.search(r"release (\d+\.\d+)", self.version_text)
        return f"nvcc {release.group(1) if release else '?'} ({self.path})"

    @property
    def identity(self) -> str:
        return f"nvcc {self.exe} {self.version_text}"  # the build line changes with every toolkit update

    def compile(self, source: str, arch: str) -> bytes:
        with tempfile.TemporaryDirectory(prefix="atpn-kernel-") as tmp:
            with open(os.path.join(tmp, "kernel.cu"), "w") as f:
                f.write(source)
            done = self._run(["-cubin", f"-arch={arch}", "-o", "kernel.cubin", "kernel.cu"], cwd=tmp)
            if done.returncode != 0:
                if "Unsupported gpu architecture" in done.stdout:
                    raise _Unusable(f"{self.label} cannot build for {arch}: {one_line(done.stdout)}")
                raise EngineError(f"{self.label} could not compile the kernel for {arch}: {one_line(done.stdout)}")
            with open(os.path.join(tmp, "kernel.cubin"), "rb") as f:
                return f.read()


Compiler = Union[Nvrtc, Nvcc]


def find_nvrtc(search: SearchPath, notes: List[str]) -> Optional[Nvrtc]:
    """The first NVRTC that loads: by soname, then libnvrtc.so* in each folder (highest version first).
    Libraries that load but cannot be used are noted for the error message."""
    candidates = list(search.nvrtc_names)
    for folder in search.nvrtc_dirs():
        candidates += _newest_first(glob.glob(os.path.join(folder, "libnvrtc.so*")))
    for where in _unique(candidates):
        try:
            lib = ctypes.CDLL(where)
        except OSError:
            continue
        try:
            return Nvrtc(lib, where)
        except (AttributeError, _Unusable) as exc:
            notes.append(f"{where} is unusable ({exc})")
    return None


def find_nvcc(search: SearchPath) -> Optional[Nvcc]:
    for path in search.nvcc_paths():
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return Nvcc(path)
    return None


def find_compilers(search: SearchPath, notes: List[str]) -> List[Compiler]:
    """NVRTC before nvcc: in process, and the one a machine without a toolkit can have."""
    return [c for c in (find_nvrtc(search, notes), find_nvcc(search)) if c is not None]


def cache_path(folder: str, source: str, arch: str, compiler: Compiler) -> str:
    key = hashlib.sha256("\0".join((source, arch, compiler.identity)).encode()).hexdigest()[:16]
    return os.path.join(folder, f"{key}.{arch}.cubin")


def _read_cubin(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data if data.startswith(ELF_MAGIC) else None


def compile_cubin(source: str, arch: str, search: Optional[SearchPath] = None,
                  cache_dir: Optional[str] = None) -> bytes:
    """CUBIN bytes of `source` for `arch` ('sm_87'): from the cache, else from the first compiler that can
    build for `arch` (then cached). No GPU needed. A one-line EngineError when no compiler can."""
    search = search or SearchPath.from_environment()
    folder = cache_dir or default_cache_dir()
    notes: List[str] = []
    compilers = find_compilers(search, notes)
    for compiler in compilers:
        try:
            path = cache_path(folder, source, arch, compiler)
            cubin = _read_cubin(path)
            if cubin is not None:
                return cubin
            cubin = compiler.compile(source, arch)
        except _Unusable as exc:
            notes.append(str(exc))
            continue
        try:
            write_atomic(path, cubin)
        except OSError:
            pass  # an unwritable cache: this start compiled in memory, the next compiles again
        return cubin
    if not notes:
        raise EngineError(f"no CUDA compiler for the GPU kernels: {search.describe()}: {INSTALL_HINT}")
    raise EngineError(f"no CUDA compiler here can build the GPU kernels for {arch} ({'; '.join(notes)}): install "
                      f"a CUDA toolkit or NVRTC that supports {arch}, or set CUDA_HOME to one")


def load_kernel(ctx: CudaContext, source: str, name: str) -> Any:
    """The pycuda function `name` of `source`, compiled for this device's SM (cached) and loaded in `ctx`."""
    arch = device_arch(ctx.device)
    cubin = compile_cubin(source, arch)
    with ctx.active():
        try:
            module = ctx.cuda.module_from_buffer(cubin)
        except ctx.cuda.Error as exc:  # a CUBIN from a compiler newer than the driver
            v = ctx.cuda.get_driver_version()
            raise EngineError(f"the CUDA driver ({v // 1000}.{v % 1000 // 10}) cannot load the kernels built for "
                              f"{arch} ({one_line(str(exc))}): use an NVRTC or CUDA toolkit no newer than the "
                              f"driver, or update the driver") from exc
        return module.get_function(name)  # the function keeps its module alive
