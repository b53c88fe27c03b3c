#!/usr/bin/env python
"""The prepared GPU check: machine facts, then every `gpu` test (pytest -m gpu), as one JSON report.

Each test is passed, failed, error or skipped with the reason, so one run on a GPU machine says what
ran, what could not and why. It ends well inside 8 minutes (`--timeout`, default 420 s for pytest).

On the lent GPU machine (CUDA 13, Python 3.12, ONNX Runtime and OpenCV, but no pycuda, no TensorRT
and no network), prepare here once: `bash bench/gpu_wheels.sh` (pycuda and what it needs, into
out/gpu-wheels/) and `make models`. Then one device command, carrying `out/gpu-wheels` and `models`:

    python3 -m pip install -q --no-index --no-deps --target /tmp/site out/gpu-wheels/*.whl &&
      PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 python3 bench/gpu_check.py --require-gpu

../shared does not travel, so the tests on the real clip skip there (the demo sequence runs);
TensorRT's tests skip for want of TensorRT. Elsewhere: `python bench/gpu_check.py` (make gpu-check).
Report: $OUT/gpu_check.json where OUT is set (the device tool brings $OUT back), else out/gpu_check.json,
with pytest's JUnit XML beside it. Exit code: 0 no test failed, 1 a test failed or errored, 2 pytest
gave no report (crashed, or ran past --timeout), 3 (--require-gpu) no test ran on a GPU.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from edge.runtime.gpu import query_gpu  # noqa: E402
from edge.errors import EngineError  # noqa: E402

MODULES = ("pycuda.driver", "tensorrt", "tensorrt_rtx", "onnxruntime", "numpy", "cv2")
OUTCOMES = {"failure": "failed", "error": "error", "skipped": "skipped"}  # JUnit tag -> outcome
MESSAGE_CHARS = 600


def command_output(args: List[str]) -> Optional[str]:
    """stdout of a tool, or None where it is missing or fails (Jetson has no nvidia-smi)."""
    if shutil.which(args[0]) is None:
        return None
    done = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True)
    return done.stdout.strip() if done.returncode == 0 else None


def module_facts(name: str) -> Dict[str, Any]:
    """Whether `name` imports here, and its version; a module that is there but does not load says why."""
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # ImportError, or an OSError from a library the module loads
        return {"available": False, "why": f"{type(exc).__name__}: {exc}"}
    top = sys.modules[name.split(".")[0]]
    facts: Dict[str, Any] = {"available": True,
                             "version": getattr(top, "__version__", None) or getattr(top, "VERSION_TEXT", None)}
    if name == "pycuda.driver":
        v = module.get_driver_version()  # the CUDA version the driver supports, no context needed
        facts["driver_cuda"] = f"{v // 1000}.{v % 1000 // 10}"
    return facts


def machine_facts() -> Dict[str, Any]:
    smi = command_output(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"])
    smi_cuda = re.search(r"CUDA Version:\s*([\d.]+)", command_output(["nvidia-smi"]) or "")
    nvcc = command_output(["nvcc", "--version"])
    try:
        gpu: Dict[str, Any] = query_gpu().to_dict()
    except EngineError as exc:
        gpu = {"error": str(exc)}
    clip = ROOT.parent / "shared" / "data" / "clips" / "hamilton_640x360.mp4"
    return {
        "python": sys.version.split()[0], "executable": sys.executable, "platform": platform.platform(),
        "gpu": gpu,
        "nvidia_smi": smi.splitlines() if smi else None,
        "nvidia_smi_cuda": smi_cuda.group(1) if smi_cuda else None,
        "nvcc": nvcc.splitlines()[-1] if nvcc else None,
        "modules": {name: module_facts(name) for name in MODULES},
        "models": sorted(p.name for p in (ROOT / "models").glob("*.onnx")),
        "clip": str(clip) if clip.is_file() else None,
    }


def junit_tests(path: Path) -> List[Dict[str, Any]]:
    """One entry per test case of pytest's JUnit XML (a module that failed to import is one too): outcome,
    seconds, and for the others than passed, why (the message, and for errors the traceback's last line)."""
    tests = []
    for case in ET.parse(str(path)).getroot().iter("testcase"):
        name = "::".join(part for part in (case.get("classname"), case.get("name")) if part)
        entry: Dict[str, Any] = {"test": name, "outcome": "passed", "time_s": round(float(case.get("time") or 0), 3)}
        for tag, outcome in OUTCOMES.items():
            node = case.find(tag)
            if node is not None:
                message = node.get("message") or ""
                last = ([line.strip() for line in (node.text or "").splitlines() if line.strip()] or [""])[-1]
                entry["outcome"] = outcome
                adds = tag != "skipped" and last not in message  # a skip's text is its message again, with a path
                entry["why"] = (f"{message}: {last}".strip(": ") if adds else message)[:MESSAGE_CHARS]
                break
        tests.append(entry)
    return tests


def exit_code(report: Dict[str, Any], require_gpu: bool) -> int:
    counts = report["counts"]
    if report["pytest"]["exit_code"] is None or not report["tests"]:
        return 2
    if counts.get("failed") or counts.get("error"):
        return 1
    if require_gpu and not counts.get("passed"):
        return 3
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--timeout", type=float, default=420.0, help="seconds pytest may take (default: %(default)s)")
    ap.add_argument("--require-gpu", action="store_true", help="exit 3 when no test ran (on a machine that has a GPU)")
    ap.add_argument("--out", help="report path (default: $OUT/gpu_check.json, else out/gpu_check.json)")
    args = ap.parse_args()
    out = Path(args.out or Path(os.environ.get("OUT") or ROOT / "out") / "gpu_check.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    junit = out.with_suffix(".junit.xml")
    if junit.exists():
        junit.unlink()  # a report from an earlier run must not pass for this one's
    start = time.monotonic()
    report: Dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine_facts()}
    print(json.dumps(report["machine"], indent=2), flush=True)
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rs", "-p", "no:cacheprovider", f"--junitxml={junit}",
           "--continue-on-collection-errors", "tests"]  # a module that does not import is an error, not the end
    pytest_start = time.monotonic()
    try:
        pytest_rc: Optional[int] = subprocess.run(cmd, cwd=str(ROOT), timeout=args.timeout).returncode
    except subprocess.TimeoutExpired:
        pytest_rc = None
    report["pytest"] = {"command": " ".join(cmd), "exit_code": pytest_rc, "timed_out": pytest_rc is None,
                        "wall_s": round(time.monotonic() - pytest_start, 1)}
    report["tests"] = junit_tests(junit) if junit.is_file() else []
    report["counts"] = dict(Counter(t["outcome"] for t in report["tests"]))
    report["wall_s"] = round(time.monotonic() - start, 1)
    code = exit_code(report, args.require_gpu)
    report["exit_code"] = code
    out.write_text(json.dumps(report, indent=2) + "\n")
    for test in report["tests"]:
        print(f"{test['outcome']:>8}  {test['test']}" + (f"  ({test['why']})" if "why" in test else ""))
    print(f"{report['counts']} in {report['wall_s']} s; exit {code}; report {out}")
    return code


if __name__ == "__main__":
    sys.exit(main())
