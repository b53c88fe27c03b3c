# Two commands do everything on a fresh machine: `make demo` and `make test`.
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
MODELS  := models

.PHONY: demo test models bench lint clean help

help:
	@echo "make demo   - set up, then run the camera loop on the CPU (camera if present, else the demo source)"
	@echo "make test   - set up, then run the test suite (CPU only; GPU tests skip without a GPU)"
	@echo "make models - export ATPN to ONNX and fetch/convert the face detector into $(MODELS)/"
	@echo "make bench  - CPU latency benchmarks (bench/)"

$(STAMP): requirements.txt pyproject.toml
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -r requirements.txt
	$(VPY) -m pip install -q --no-deps -e .
	touch $@

models: $(STAMP)
	$(VPY) -m edge.setup_models --dir $(MODELS)

lint: $(STAMP)
	$(VENV)/bin/vermin -q -t=3.8- --violations --no-tips --eval-annotations edge *.py bench tests

test: models lint
	$(VPY) -m pytest -q

demo: models
	$(VPY) run_camera.py --display off --save out/demo.mp4 --json out/demo.jsonl

bench: models
	$(VPY) bench/bench_atpn_cpu.py
	$(VPY) bench/bench_loop_cpu.py

clean:
	rm -rf $(VENV) $(MODELS) out
