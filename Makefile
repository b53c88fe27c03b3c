# Two commands do everything on a fresh machine: `make demo` and `make test`.
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
MODELS  := models

.PHONY: demo test models bench lint compat clean help gpu-check gpu-wheels

help:
	@echo "make demo   - set up, then run the camera loop on the CPU (camera if present, else the demo source)"
	@echo "make test   - set up, then run the test suite (CPU only; GPU tests skip without a GPU), then make compat"
	@echo "make models - export ATPN to ONNX and fetch/convert the face detector into $(MODELS)/"
	@echo "make bench  - CPU latency benchmarks (bench/)"
	@echo "make compat - the runtime, pipeline and CLI tests as a Jetson runs them: Python 3.8 if installed, numpy 1.x, no torch"
	@echo "make gpu-check  - on a CUDA machine: the GPU tests (pycuda; TensorRT ones skip without it) as a JSON report in out/"
	@echo "make gpu-wheels - build pycuda for a lent GPU machine's Python 3.12 into out/gpu-wheels (see bench/gpu_check.py)"

$(STAMP): requirements.txt pyproject.toml
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -r requirements.txt
	$(VPY) -m pip install -q --no-deps -e .
	touch $@

models: $(STAMP)
	$(VPY) -m edge.setup_models --dir $(MODELS)

# Every module that calls TensorRT or pycuda, type-checked against TensorRT 10.13's API (tensorrt-stubs),
# which lives apart in .venv/stubs: in site-packages its bare `tensorrt/` folder would import as an empty
# package and hide that TensorRT is missing. Its two syntax slips (a parameter named `in`, a required
# parameter after defaults) are mended after install.
TRT_MODULES := edge/runtime/trt_compat.py edge/compile/builder.py edge/compile/trt_calibrator.py edge/runtime/tensorrt.py \
	edge/runtime/cuda.py edge/runtime/kernels.py edge/runtime/base.py edge/pipeline/gpu_crop.py \
	edge/pipeline/gpu_loop.py edge/app/run.py edge/compile/request.py build_engine.py
STUBS := $(VENV)/stubs/.installed
$(STUBS): $(STAMP)
	$(VPY) -m pip install -q --no-deps --target $(VENV)/stubs tensorrt-stubs==10.13.0.35.1
	sed -i -E 's/([(, ])in: /\1in_: /g; s/(power: Weights = None, channel_axis: int)\)/\1 = 0)/' \
		$(VENV)/stubs/tensorrt_bindings/tensorrt.pyi
	touch $@

lint: $(STAMP) $(STUBS)
	$(VENV)/bin/vermin -q -t=3.8- --violations --no-tips --eval-annotations edge *.py bench tests
	$(VPY) -m pyflakes edge bench tests *.py
	$(VENV)/bin/mypy $(TRT_MODULES)
	$(VPY) -m pytest -q -p no:cacheprovider tests/test_layers.py  # the house's layers: no cycle, no upward import

test: models lint
	$(VPY) -m pytest -q
	$(MAKE) --no-print-directory compat

demo: models
	$(VPY) run_camera.py --display off --save out/demo.mp4 --json out/demo.jsonl

bench: models
	$(VPY) bench/bench_atpn_cpu.py
	$(VPY) bench/bench_loop_cpu.py

# What a Jetson runs must work with numpy 1.x and without torch (JetPack 5: Python 3.8, numpy 1.x).
# JetPack 5's Python runs it where one is installed (on the PATH or under pyenv), else $(PY).
COMPAT_PY ?= $(or $(shell python3.8 -c 'import sys; print(sys.executable)' 2>/dev/null),\
	$(firstword $(wildcard $(HOME)/.pyenv/versions/3.8*/bin/python3.8)),$(PY))
COMPAT_VENV := .venv-jetson
COMPAT_TESTS := tests/test_crop.py tests/test_detector.py tests/test_tracker.py tests/test_loop.py \
	tests/test_run_camera.py tests/test_runtime_cpu.py tests/test_config.py tests/test_sources.py \
	tests/test_failures.py tests/test_rtsp.py tests/test_mqtt.py tests/test_stills.py tests/test_layers.py
compat: models
	test -x $(COMPAT_VENV)/bin/python || $(COMPAT_PY) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/python -m pip install -q -r requirements-jetson.txt
	$(COMPAT_VENV)/bin/python --version
	PYTHONPATH=. $(COMPAT_VENV)/bin/python -m pytest -q -p no:cacheprovider $(COMPAT_TESTS)

gpu-check: models
	$(VPY) bench/gpu_check.py

gpu-wheels:
	bash bench/gpu_wheels.sh

clean:
	rm -rf $(VENV) $(COMPAT_VENV) $(MODELS) out
