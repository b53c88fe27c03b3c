"""The real TensorRT build path on a machine without a GPU: TensorRT-RTX builds ahead of time.

`make test` installs tensorrt-rtx-cu12 (module `tensorrt_rtx`); its builder parses our ONNX files
and compiles engines for a compute capability (--compute-capability) with no GPU present. Nothing
here stands in for TensorRT: every engine below is built by the library. Running them needs an RTX
GPU (tests/test_build_gpu.py, marker `gpu`).
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Tuple

import numpy as np
import pytest

from conftest import ROOT, model_path
from edge.runtime import trt_compat as compat
from edge.compile.builder import BuildResult, build_engine
from edge.runtime.gpu import GpuInfo
from edge.runtime.engine_request import BuildRequest
from edge.compile.precision import LANDMARK_OUTPUT
from edge.compile.quantize import quantize_qdq
from edge.runtime.sidecar import check_engine
from edge.fileio import file_sha256
from edge.errors import ConfigError, EngineError, ModelError

pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX is not installed (`make test` installs tensorrt-rtx-cu12)")
RTX_4090 = GpuInfo("NVIDIA GeForce RTX 4090", "8.9")


@pytest.fixture(autouse=True)
def use_rtx(monkeypatch):
    """TensorRT-RTX even where full TensorRT is installed too."""
    monkeypatch.setenv(compat.LIBRARY_ENV, compat.RTX)


@pytest.fixture(scope="module")
def rtx_tag() -> str:
    import tensorrt_rtx

    return "trtrtx" + tensorrt_rtx.__version__


def build(tmp_path: Path, onnx: str, **kwargs) -> Tuple[BuildResult, str]:
    """build_engine ahead of time for compute 8.9 into tmp_path; returns the result and the progress printed."""
    out = io.StringIO()
    request = BuildRequest(onnx=onnx, compute_capability="8.9", save_engine=str(tmp_path / f"{Path(onnx).stem}.engine"),
                           **kwargs)
    return build_engine(request, compat.ProgressDisplay(out)), out.getvalue()


@pytest.mark.parametrize("model", ["atpn68.onnx", "atpn68_integral.onnx", "atpn68_stills.onnx", "blazeface_short.onnx",
                                   "blazeface_full.onnx"])
def test_our_models_build_fp32_engines_with_a_sidecar(tmp_path, model, rtx_tag):
    result, progress = build(tmp_path, str(model_path(model)))
    side = result.sidecar
    assert result.built and result.note == "no engine yet"
    assert os.path.getsize(result.engine_path) == side.engine_bytes > 100_000
    assert file_sha256(result.engine_path) == side.engine_sha256
    data = json.loads(Path(result.engine_path + ".json").read_text())
    assert data["tensorrt"] == rtx_tag and data["library"].startswith("TensorRT-RTX 1.")
    assert data["gpu"] == {"name": "", "compute_capability": "8.9"} and data["precision"] == "fp32"
    assert data["command"].endswith("--compute-capability 8.9 --rebuild")
    assert list(data["profile"]) == ["crop" if model.startswith("atpn") else "image"]  # a dynamic batch axis
    assert data["profile"][next(iter(data["profile"]))]["max"][0] == 8 and ", batch 1:4:8" in progress
    assert progress.startswith(f"[build] {model_path(model)} -> fp32, TensorRT-RTX 1.")
    assert "[build] Building engine (" in progress  # the library's own phases (IProgressMonitor)
    assert ("atpn_spec" in side.onnx_metadata) == model.startswith("atpn")  # the Aligner reads it from the sidecar
    # what the runtime checks before deserialising: this library, any GPU of compute 8.9
    assert check_engine(result.engine_path, rtx_tag, RTX_4090).key == side.key


def test_an_engine_is_reused_until_something_that_changes_it_changes(tmp_path):
    onnx = str(model_path("atpn68.onnx"))
    first, _ = build(tmp_path, onnx)
    again, progress = build(tmp_path, onnx)
    assert not again.built and again.note.startswith("up to date") and progress == ""
    assert again.sidecar.engine_sha256 == first.sidecar.engine_sha256
    wider, _ = build(tmp_path, onnx, batch="1:8:16")
    assert wider.built and wider.note.startswith("built for profile")
    forced, _ = build(tmp_path, onnx, batch="1:8:16", rebuild=True)
    assert forced.built and forced.note == "--rebuild"


def test_the_runtime_refuses_an_engine_from_another_library_or_gpu_generation(tmp_path):
    result, _ = build(tmp_path, str(model_path("blazeface_short.onnx")))
    for tag, gpu, phrase in [("trt10.3.0.30", RTX_4090, "built with TensorRT-RTX 1."),
                             ("trtrtx1.6.0.0", RTX_4090, ", this is TensorRT-RTX 1.6.0.0"),
                             (result.sidecar.key.tensorrt, GpuInfo("NVIDIA GeForce RTX 3090", "8.6"),
                              "built for any GPU of compute 8.9, this is NVIDIA GeForce RTX 3090 (compute 8.6)")]:
        with pytest.raises(EngineError) as info:
            check_engine(result.engine_path, tag, gpu)
        message = str(info.value)
        assert phrase in message and "\n" not in message and message.endswith("--compute-capability 8.9 --rebuild`")


@pytest.fixture(scope="module")
def qdq_model(tmp_path_factory, astronaut_calibration_set) -> str:
    out = tmp_path_factory.mktemp("qdq") / "atpn68.qdq.onnx"
    quantize_qdq(str(model_path("atpn68.onnx")), astronaut_calibration_set.folder, str(out))
    return str(out)


def test_a_qdq_model_builds_int8_with_the_landmark_heads_float(tmp_path, qdq_model):
    result, progress = build(tmp_path, qdq_model, int8=True, qdq=True)
    flags = dict(flag.split(": ") for flag in result.sidecar.build_flags)
    assert result.built and result.sidecar.key.precision == "qdq" and "-> qdq, TensorRT-RTX" in progress
    assert int(flags["Q/DQ layers"]) > 80  # the backbone's activations and weights, as TensorRT parsed them
    assert int(flags[f"float layers after '{LANDMARK_OUTPUT}' or in a soft-argmax head"]) >= 10  # renderer, heads


def test_a_qdq_model_quantized_after_the_landmarks_is_refused(tmp_path, qdq_model):
    """A Q/DQ pair on the landmarks (as another quantizer might put it) would move them: one line, the fix."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(qdq_model)
    graph = model.graph
    graph.initializer.extend([numpy_helper.from_array(np.array(0.01, np.float32), "lm_scale"),
                              numpy_helper.from_array(np.array(0, np.int8), "lm_zero")])
    for node in graph.node:  # every reader of the landmarks now reads them through int8
        node.input[:] = ["landmarks_dq" if name == LANDMARK_OUTPUT else name for name in node.input]
    graph.node.extend([helper.make_node("QuantizeLinear", [LANDMARK_OUTPUT, "lm_scale", "lm_zero"], ["landmarks_q"]),
                       helper.make_node("DequantizeLinear", ["landmarks_q", "lm_scale", "lm_zero"], ["landmarks_dq"])])
    path = tmp_path / "bad.qdq.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelError) as info:
        build(tmp_path, str(path), int8=True, qdq=True)
    message = str(info.value)
    assert message.startswith("2 Q/DQ layer(s) after 'landmarks'") and "edge.compile.quantize" in message
    assert "\n" not in message


def test_parser_errors_are_listed_after_a_headline(tmp_path):
    """A model ONNX Runtime runs but TensorRT's parser cannot (a determinant)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Det", ["x"], ["det"])], "det",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 3])],
                              [helper.make_tensor_value_info("det", TensorProto.FLOAT, [])])
    path = tmp_path / "det.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ModelError) as info:
        build(tmp_path, str(path))
    headline, *errors = str(info.value).splitlines()
    assert headline.startswith(f"{path}: TensorRT-RTX 1.") and "ONNX parser rejected it" in headline
    assert errors and all(e.startswith("  ") for e in errors) and "operator: Det" in " ".join(errors)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"fp16": True}, EngineError, "builds strongly typed networks only (no FP16 builder flag): convert the ONNX"),
    ({"int8": True, "calib": "CALIB"}, EngineError, "has no INT8 calibrators: make a Q/DQ ONNX with"),
    ({"compute_capability": "9.0"}, ConfigError, "--compute-capability 9.0: TensorRT-RTX 1."),
])
def test_what_tensorrt_rtx_cannot_build_is_one_line_saying_what_to_do(tmp_path, kwargs, error, message,
                                                                      astronaut_calibration_set):
    if kwargs.get("calib"):
        kwargs = dict(kwargs, calib=astronaut_calibration_set.folder)
    request = replace(BuildRequest(onnx=str(model_path("atpn68.onnx")), compute_capability="8.9",
                                   save_engine=str(tmp_path / "x.engine")), **kwargs)
    with pytest.raises(error) as info:
        build_engine(request, compat.ProgressDisplay(io.StringIO()))
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "x.engine").exists()


def test_the_cli_says_which_library_built_the_engine(tmp_path):
    engine = tmp_path / "short.engine"
    args = [sys.executable, str(ROOT / "build_engine.py"), "--onnx", str(model_path("blazeface_short.onnx")),
            "--compute-capability", "8.6", "--save-engine", str(engine)]
    env = dict(os.environ, **{compat.LIBRARY_ENV: compat.RTX})
    done = subprocess.run(args, capture_output=True, text=True, cwd=str(ROOT), timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert f"built {engine} (" in done.stdout and "fp32, TensorRT-RTX 1." in done.stdout
    assert "any GPU of compute 8.6; reason: no engine yet" in done.stdout
    again = subprocess.run(args, capture_output=True, text=True, cwd=str(ROOT), timeout=300, env=env)
    assert again.returncode == 0 and "up to date" in again.stdout and again.stderr == ""


def test_builds_and_engines_share_one_logger_per_process():
    trt = compat.import_tensorrt()
    logger = compat.logger_for(trt)
    assert isinstance(logger, trt.ILogger) and compat.logger_for(trt) is logger


def test_the_default_fp16_loop_asks_a_strongly_typed_library_for_fp32_with_a_note():
    """The camera loop's default precision is fp16; TensorRT-RTX has no FP16 flag. Without a GPU the build
    stops at the GPU query, which comes after the precision check: reaching it shows fp16 was not asked for."""
    import ctypes.util

    from edge.config import load_config
    from edge.app.run import engine_file

    if ctypes.util.find_library("cuda"):
        pytest.skip("a CUDA driver is installed here: the build would go on")
    config = load_config(None).with_overrides({"runtime.backend": "tensorrt"})
    assert config.runtime.precision == "fp16"
    notes = []
    with pytest.raises(EngineError, match="^no CUDA driver .* pass --compute-capability"):
        engine_file(config, str(model_path("atpn68.onnx")), "1:4:4", notes.append)
    assert notes == ["note: TensorRT-RTX " + compat.features_of(compat.import_tensorrt()).version + " is strongly "
                     "typed (no FP16 flag): atpn68.onnx runs as FP32; for FP16 convert the ONNX to FP16 and point "
                     "models.* at it"]
