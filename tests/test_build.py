"""edge.compile on the CPU: calibration set from real frames, Q/DQ model, sidecar, cache keys, options, bad input.

TensorRT is never faked here: the only stand-ins are tiny attribute bags for the version shims
(which flags and methods each TensorRT release has), which test our own branching.
"""
from __future__ import annotations

import importlib.util
import io
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, Optional

import numpy as np
import pytest

from conftest import ROOT, model_path
from edge.runtime import trt_compat as compat
from edge.compile.accuracy import compare_outputs, run_onnx
from edge.compile.builder import default_engine_path, plan_build
from edge.pipeline.calibration import make_calibration_set
from edge.pipeline.calibration_set import CalibrationSet, write_calibration_set
from edge.runtime.gpu import GpuInfo
from edge.compile.request import request_from
from edge.runtime.engine_request import BatchProfile, BuildRequest, profile_shapes
from edge.compile.quantize import QUANT_METADATA_KEY, float_nodes, quantize_qdq
from edge.runtime.sidecar import CacheKey, Sidecar, check_engine, reusable, write_sidecar
from edge.fileio import file_sha256
from edge.errors import CalibrationError, ConfigError, EngineError, ModelError

ORIN = GpuInfo("Orin", "8.7")
PROFILE = {"crop": {"min": [1, 3, 112, 112], "opt": [4, 3, 112, 112], "max": [8, 3, 112, 112]}}
# INT8 (Q/DQ, renderer and heads in float) against FP32 on held-out crops: the bound the tests hold it to.
# The renderer stays float, so the heatmap changes only because INT8 moved the points: a point moved
# d px changes its Gaussian (sigma = 1 cell = 4 px) by up to ~0.15 d, so 1.5 px on one point allows
# ~0.25, and overlapping points a little more (the trained model: 0.27 at a 1.66 px worst point).
# heatmap_max follows the worst point: a sigma-1-cell Gaussian moved by d cells changes by up to ~0.6 d,
# so 0.45 allows one point ~3 px off (4 px per cell) while the mean stays within 1.5 px.
BOUND = {"landmarks_px": 1.5, "pose_deg": 2.0, "track": 0.03, "heatmap_max": 0.45}


# ---------------------------------------------------------------- calibration set from real frames


@pytest.fixture(scope="module")
def clip_set(tmp_path_factory, hamilton_clip) -> CalibrationSet:
    out = tmp_path_factory.mktemp("calib") / "clip"
    report = make_calibration_set(str(hamilton_clip), str(out), str(model_path("atpn68.onnx")),
                                  str(model_path("blazeface_short.onnx")), max_crops=24, every=10)
    assert report.kept == 24 and report.frames >= 24
    return CalibrationSet.open(str(out))


@pytest.fixture(scope="module")
def held_out_set(astronaut_calibration_set) -> CalibrationSet:
    """Faces the quantizer (fed from the clip) never saw."""
    return astronaut_calibration_set


def test_calibration_crops_are_the_runtime_warp_of_detected_faces(clip_set, hamilton_clip):
    from edge.model.crop import warp_crops
    from edge.detectors.blazeface import FaceDetector
    from edge.io.uri import open_source
    from edge.runtime.onnxrt import OnnxRuntimeEngine

    assert clip_set.count == 24 and clip_set.crop_shape == (3, 112, 112)
    assert clip_set.manifest["count"] == 24 and clip_set.manifest["spec"]["input_size"] == 112
    detector = FaceDetector(OnnxRuntimeEngine(str(model_path("blazeface_short.onnx")), threads=1),
                            clip_set.manifest["spec"]["crop_scale"])
    with open_source(str(hamilton_clip)) as source:
        for frame in source:  # the first sampled frame with a face gave the first crop(s)
            if frame.index % clip_set.manifest["every"]:
                continue
            dets = detector.detect(frame.image)
            if len(dets):
                expected, _ = warp_crops(frame.image, list(dets.crops), replace_spec(clip_set))
                break
    first = next(clip_set.batches(len(expected)))
    np.testing.assert_array_equal(first, expected)


def replace_spec(calib: CalibrationSet):
    from edge.model.spec import ModelSpec

    return ModelSpec(**calib.manifest["spec"])


def test_calibration_command_reports_crops_kept(tmp_path, hamilton_clip, capsys):
    from edge.pipeline.calibration import main

    code = main(["--input", str(hamilton_clip), "--out", str(tmp_path / "set"), "--max-crops", "5", "--every", "30",
                 "--onnx", str(model_path("atpn68.onnx")), "--detector", str(model_path("blazeface_short.onnx"))])
    assert code == 0
    assert "kept 5 face crops" in capsys.readouterr().out
    assert CalibrationSet.open(str(tmp_path / "set")).count == 5


def test_calibration_command_without_faces_fails_in_one_line(tmp_path, capsys):
    import cv2

    frames = tmp_path / "blank"
    frames.mkdir()
    cv2.imwrite(str(frames / "0.png"), np.full((240, 320, 3), 127, np.uint8))
    from edge.pipeline.calibration import main

    code = main(["--input", str(frames), "--out", str(tmp_path / "set"), "--onnx", str(model_path("atpn68.onnx")),
                 "--detector", str(model_path("blazeface_short.onnx"))])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: no face found in 1 frame(s)") and "\n" not in err


# ---------------------------------------------------------------- Q/DQ model


@pytest.fixture(scope="module")
def qdq_model(tmp_path_factory, clip_set) -> Path:
    out = tmp_path_factory.mktemp("qdq") / "atpn68.qdq.onnx"
    quantize_qdq(str(model_path("atpn68.onnx")), clip_set.folder, str(out))
    return out


def test_qdq_model_is_valid_symmetric_per_channel_int8_with_float_heads(qdq_model):
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(qdq_model))
    onnx.checker.check_model(model)
    meta = {p.key: p.value for p in model.metadata_props}
    assert "atpn_spec" in meta and json.loads(meta[QUANT_METADATA_KEY])["keep_float"] == "after-landmarks"
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    q_nodes = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert len(q_nodes) > 40
    zero_points = [inits[n.input[2]] for n in q_nodes if len(n.input) > 2]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)  # symmetric int8
    assert any(inits[n.input[1]].size > 1 for n in q_nodes if n.input[1] in inits)  # per-channel weight scales
    assert not any(inits.get(n.input[0], np.zeros(0, np.int8)).dtype == np.int32 for n in q_nodes)  # float biases
    float_part = set(float_nodes(model.graph))
    by_name = {n.name: n for n in model.graph.node}
    assert float_part and not any(by_name[name].op_type.endswith("QuantizeLinear") for name in float_part)


def test_a_soft_argmax_landmark_head_stays_float(tmp_path):
    import onnx

    from edge.model.atpn import build_atpn
    from edge.model.export import export_onnx
    from edge.model.spec import ModelSpec

    path = export_onnx(build_atpn(ModelSpec(landmark_head="integral")), str(tmp_path / "integral.onnx"))
    graph = onnx.load(path).graph
    kept = set(float_nodes(graph))
    by_name = {n.name: n for n in graph.node}
    assert {by_name[k].op_type for k in kept} >= {"Softmax", "MatMul", "Exp"}  # soft-argmax, renderer
    head_convs = {k for k in kept if by_name[k].op_type == "Conv" and "landmark_head" in k}
    assert {k.split("/")[3] for k in head_convs} == {"refine", "logits"}  # the chain into the Softmax
    assert not any(by_name[k].op_type == "Conv" and k.startswith("/model/deep") for k in kept)  # the backbone goes int8


def test_tensorrt_route_keeps_the_layers_the_qdq_route_keeps():
    """Our adapter from a TensorRT network to edge.compile.precision's rule (a stand-in network, not TensorRT)."""
    from edge.compile.builder import _keep_float_after

    types = SimpleNamespace(CONSTANT="constant", SOFTMAX="softmax", OTHER="other")
    f32, i32 = "float32", "int32"

    class FakeLayer:
        def __init__(self, name, kind, inputs, outputs, dtype=f32):
            self.name, self.type, self._in, self._out = name, kind, inputs, [SimpleNamespace(name=o, dtype=dtype)
                                                                             for o in outputs]
            self.num_inputs, self.num_outputs, self.precision, self.set_types = len(inputs), len(outputs), None, []

        def get_input(self, j):
            return SimpleNamespace(name=self._in[j])

        def get_output(self, j):
            return self._out[j]

        def set_output_type(self, j, dtype):
            self.set_types.append((j, dtype))

    layers = [FakeLayer("backbone", "other", ["crop"], ["feat"]), FakeLayer("lateral", "other", ["feat"], ["lat"]),
              FakeLayer("merge", "other", ["lat", "feat"], ["sum"]), FakeLayer("logits", "other", ["sum"], ["lg"]),
              FakeLayer("shape", "constant", [], ["shp"], i32), FakeLayer("reshape", "other", ["lg", "shp"], ["flat"]),
              FakeLayer("softmax", "softmax", ["flat"], ["prob"]), FakeLayer("expect", "other", ["prob"], ["landmarks"]),
              FakeLayer("render", "other", ["landmarks"], ["heat"]), FakeLayer("pose", "other", ["heat", "feat"], ["pose"])]
    network = SimpleNamespace(num_layers=len(layers), get_layer=lambda i: layers[i])
    flags = []
    config = SimpleNamespace(set_flag=flags.append)
    trt = SimpleNamespace(LayerType=types, float32=f32, BuilderFlag=SimpleNamespace(PREFER_PRECISION_CONSTRAINTS="prefer"))
    summary = _keep_float_after(trt, network, config, "landmarks")
    kept = {layer.name for layer in layers if layer.precision == f32}
    assert kept == {"logits", "reshape", "softmax", "expect", "render", "pose"}
    assert flags == ["prefer"] and summary[1].endswith(": 6")
    assert all(layer.set_types == [(0, f32)] for layer in layers if layer.name in kept)


def test_qdq_model_runs_in_onnxruntime_within_bound_of_fp32(qdq_model, held_out_set):
    crops = held_out_set.all_crops()
    ref = run_onnx(str(model_path("atpn68.onnx")), crops)
    diff = compare_outputs(ref, run_onnx(str(qdq_model), crops), 112)
    assert diff.crops == len(crops) >= 5
    for name, bound in BOUND.items():
        assert getattr(diff, name) <= bound, f"{name}: {diff.describe()}"


def test_quantizer_refuses_a_quantized_model_and_a_mismatched_set(qdq_model, clip_set, tmp_path):
    with pytest.raises(ModelError, match="already quantized"):
        quantize_qdq(str(qdq_model), clip_set.folder, str(tmp_path / "x.onnx"))
    small = tmp_path / "small"
    write_calibration_set(str(small), np.zeros((4, 3, 96, 96), np.float32), {})
    with pytest.raises(CalibrationError, match="crops are 3x96x96 but .* takes 3x112x112"):
        quantize_qdq(str(model_path("atpn68.onnx")), str(small), str(tmp_path / "x.onnx"))
    # Crops of the right size cut for another crop scale (an old set, a retrained model) would give
    # INT8 ranges for faces smaller than the runtime's: refused, as is the INT8 engine build (plan_build).
    stale = tmp_path / "stale"
    spec = dict(clip_set.manifest["spec"], crop_scale=1.6)
    write_calibration_set(str(stale), clip_set.all_crops(), {"spec": spec})
    with pytest.raises(CalibrationError, match=r"crops were cut with crop_scale 1\.6 \(model: 1\.45\); make a set"):
        quantize_qdq(str(model_path("atpn68.onnx")), str(stale), str(tmp_path / "x.onnx"))
    with pytest.raises(CalibrationError, match="crop_scale"):
        plan_build(BuildRequest(onnx=str(model_path("atpn68.onnx")), int8=True, calib=str(stale)))


# ---------------------------------------------------------------- calibration set files


def test_calibration_set_batches_fingerprint_and_bad_folders(tmp_path):
    folder = tmp_path / "set"
    write_calibration_set(str(folder), np.arange(10 * 3 * 4 * 4, dtype=np.float32).reshape(10, 3, 4, 4), {"a": 1},
                          shard_size=3)
    calib = CalibrationSet.open(str(folder))
    assert calib.count == 10 and len(calib.shards) == 4
    assert [len(b) for b in calib.batches(4)] == [4, 4]
    assert [len(b) for b in calib.batches(4, drop_last=False)] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate(list(calib.batches(5))), calib.all_crops())
    before = calib.fingerprint()
    write_calibration_set(str(folder), np.zeros((9, 3, 4, 4), np.float32), {"a": 1})
    assert CalibrationSet.open(str(folder)).fingerprint() != before
    with pytest.raises(CalibrationError, match="calibration folder not found; make one with"):
        CalibrationSet.open(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CalibrationError, match="holds no .npy crops"):
        CalibrationSet.open(str(tmp_path / "empty"))
    (tmp_path / "mixed").mkdir()
    np.save(tmp_path / "mixed" / "a.npy", np.zeros((2, 3, 4, 4), np.float32))
    np.save(tmp_path / "mixed" / "b.npy", np.zeros((2, 3, 5, 5), np.float32))
    with pytest.raises(CalibrationError, match="crops of different shapes"):
        CalibrationSet.open(str(tmp_path / "mixed"))
    (tmp_path / "uint8").mkdir()
    np.save(tmp_path / "uint8" / "a.npy", np.zeros((2, 3, 4, 4), np.uint8))
    with pytest.raises(CalibrationError, match="expected float32 crops"):
        CalibrationSet.open(str(tmp_path / "uint8"))


# ---------------------------------------------------------------- options, profile, config


@pytest.mark.parametrize("text, expected", [("1:4:8", (1, 4, 8)), ("4", (4, 4, 4)), (" 2:2:2 ", (2, 2, 2)),
                                            ("1:1:16", (1, 1, 16))])
def test_batch_profile_parses(text, expected):
    p = BatchProfile.parse(text)
    assert (p.min, p.opt, p.max) == expected


@pytest.mark.parametrize("text", ["", "0:1:2", "4:2:8", "1:2", "a:b:c", "1:2:3:4", "-1:2:3", "1.5:2:3", "1:8:4"])
def test_batch_profile_rejects(text):
    with pytest.raises(ConfigError, match="--batch must be MIN:OPT:MAX"):
        BatchProfile.parse(text)


def test_profile_shapes_cover_dynamic_batch_only():
    shapes = profile_shapes({"crop": (None, 3, 112, 112), "static": (1, 3, 128, 128)}, BatchProfile(1, 4, 8))
    assert shapes == PROFILE
    with pytest.raises(ConfigError, match="dynamic axes besides the batch"):
        profile_shapes({"image": (None, 3, None, None)}, BatchProfile(1, 1, 1))


@pytest.mark.parametrize("kwargs, message", [
    ({"qdq": True}, "--qdq needs --int8"),
    ({"int8": True}, "--int8 needs --calib DIR"),
    ({"calib": "x"}, "--calib is used only with --int8"),
    ({"int8": True, "qdq": True, "calib": "x"}, "--calib is used only with --int8 without --qdq"),
    ({"workspace": 0}, "--workspace must be a positive"),
    ({"batch": "8:4:1"}, "--batch must be"),
])
def test_build_request_rejects_bad_combinations(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        BuildRequest(onnx="m.onnx", **kwargs)


@pytest.mark.parametrize("kwargs, precision", [({}, "fp32"), ({"fp16": True}, "fp16"),
                                               ({"int8": True, "calib": "c"}, "int8"),
                                               ({"int8": True, "calib": "c", "fp16": True}, "int8-fp16"),
                                               ({"int8": True, "qdq": True}, "qdq")])
def test_precision_labels_and_the_rebuild_command_round_trip(kwargs, precision):
    import build_engine

    request = BuildRequest(onnx="models/my model.onnx", workspace=512, timing_cache="t.cache", **kwargs)
    assert request.precision == precision
    args = vars(build_engine.parse_args(shlex.split(request.command())[2:]))
    args.pop("config")
    assert request_from(None, args) == replace(request, rebuild=True)


def test_build_section_of_a_yaml_config(tmp_path):
    cfg = tmp_path / "jetson.yaml"
    cfg.write_text("models: {atpn: models/atpn68.onnx}\nbuild:\n  onnx: models/atpn68.onnx\n  fp16: true\n"
                   "  batch: 1:2:4\n  workspace: 256\n")
    assert request_from(str(cfg), {}).batch == "1:2:4"  # unquoted: not YAML 1.1's base-60 integer 3724
    request = request_from(str(cfg), {"batch": "1:4:8", "fp16": False})
    assert (request.onnx, request.fp16, request.batch, request.workspace) == ("models/atpn68.onnx", True, "1:4:8", 256)
    cfg.write_text("build:\n  fp61: true\n")
    with pytest.raises(ConfigError, match="unknown key 'build.fp61'; valid keys: onnx, fp16"):
        request_from(str(cfg), {})
    cfg.write_text("build:\n  workspace: lots\n")
    with pytest.raises(ConfigError, match="build.workspace must be int"):
        request_from(str(cfg), {})
    cfg.write_text("runtime: {backend: tensorrt}\n")
    with pytest.raises(ConfigError, match="no 'build:' section"):
        request_from(str(cfg), {})


# ---------------------------------------------------------------- sidecar and cache key


def make_key(**changes) -> CacheKey:
    key = CacheKey(onnx_sha256="a" * 64, precision="fp16", profile=PROFILE, tensorrt="trt10.3.0", gpu=ORIN)
    return replace(key, **changes)


@pytest.mark.parametrize("changes, phrase", [
    ({"tensorrt": "trt8.5.2"}, "TensorRT 8.5.2 built it, this is TensorRT 10.3.0"),
    ({"tensorrt": "trtrtx1.7.1"}, "TensorRT-RTX 1.7.1 built it, this is TensorRT 10.3.0"),
    ({"gpu": GpuInfo("Xavier", "7.2")}, "built for Xavier (compute 7.2), this is Orin (compute 8.7)"),
    ({"onnx_sha256": "b" * 64}, "the ONNX changed"),
    ({"precision": "fp32"}, "built as fp32, asked for fp16"),
    ({"profile": {"crop": dict(PROFILE["crop"], max=[16, 3, 112, 112])}}, "built for profile"),
    ({"calibration": "f00d"}, "the calibration set changed"),
])
def test_cache_key_names_the_first_difference(changes, phrase):
    assert make_key().mismatch(make_key()) is None
    assert phrase in make_key().mismatch(make_key(**changes))


@pytest.fixture
def engine_file(tmp_path) -> Path:
    """Stand-in bytes for an engine: the sidecar logic reads only its size and sha256."""
    path = tmp_path / "atpn68.fp16.b1-4-8.trt10.3.0.orin-sm87.engine"
    path.write_bytes(b"serialized engine bytes" * 100)
    request = BuildRequest(onnx="models/atpn68.onnx", fp16=True, save_engine=str(path))
    write_sidecar(str(path), Sidecar(key=make_key(), request=request, engine_bytes=path.stat().st_size,
                                     engine_sha256=file_sha256(str(path)), build_flags=("FP16",),
                                     onnx_metadata={"atpn_spec": "{}"}, built_utc="2025-01-01T00:00:00Z"))
    return path


def test_sidecar_round_trip_and_reuse(engine_file):
    side = check_engine(str(engine_file), "trt10.3.0", ORIN)
    assert side.key == make_key() and side.build_flags == ("FP16",) and side.onnx_metadata == {"atpn_spec": "{}"}
    data = json.loads(Path(str(engine_file) + ".json").read_text())
    assert data["tensorrt"] == "trt10.3.0" and data["library"] == "TensorRT 10.3.0"
    assert data["gpu"] == {"name": "Orin", "compute_capability": "8.7"}
    assert data["profile"] == PROFILE and data["command"].endswith("--rebuild")
    assert reusable(str(engine_file), make_key()) is None
    assert reusable(str(engine_file), make_key(precision="fp32")) == "built as fp16, asked for fp32"
    assert reusable(str(engine_file) + ".missing", make_key()) == "no engine yet"


@pytest.mark.parametrize("trt_version, gpu, phrase", [
    ("trt8.6.2", ORIN, "built with TensorRT 10.3.0, this is TensorRT 8.6.2"),
    ("trtrtx1.7.1.116", ORIN, "built with TensorRT 10.3.0, this is TensorRT-RTX 1.7.1.116"),
    ("trt10.3.0", GpuInfo("NVIDIA GeForce RTX 4090", "8.9"), "built for Orin (compute 8.7), this is NVIDIA GeForce"),
    ("trt10.3.0", GpuInfo("Orin NX", "8.7"), "built for Orin (compute 8.7), this is Orin NX"),
])
def test_loading_refuses_another_tensorrt_or_gpu_with_the_rebuild_command(engine_file, trt_version, gpu, phrase):
    with pytest.raises(EngineError) as info:
        check_engine(str(engine_file), trt_version, gpu)
    message = str(info.value)
    assert phrase in message and "\n" not in message
    assert message.endswith(f"`python build_engine.py --onnx models/atpn68.onnx --fp16 --batch 1:4:8 --save-engine "
                            f"{engine_file} --rebuild`")


def test_loading_refuses_a_corrupt_engine_and_a_missing_or_broken_sidecar(engine_file):
    engine_file.write_bytes(engine_file.read_bytes()[:-10] + b"0123456789")  # same size, other bytes
    with pytest.raises(EngineError, match=r"corrupt or replaced\); rebuild it with `python build_engine.py"):
        check_engine(str(engine_file), "trt10.3.0", ORIN)
    Path(str(engine_file) + ".json").write_text("{not json")
    with pytest.raises(EngineError, match="unreadable sidecar"):
        check_engine(str(engine_file), "trt10.3.0", ORIN)
    os.remove(str(engine_file) + ".json")
    with pytest.raises(EngineError, match="no sidecar .* TensorRT version and GPU are unknown"):
        check_engine(str(engine_file), "trt10.3.0", ORIN)
    with pytest.raises(EngineError, match="engine not found"):
        check_engine(str(engine_file) + ".nope", "10.3.0", ORIN)


def test_default_engine_name_carries_model_precision_batch_library_and_gpu():
    nano = GpuInfo("NVIDIA Jetson Orin Nano", "8.7")
    path = default_engine_path("models/atpn68.onnx", "int8-fp16", "1:4:8", "trt8.5.2", nano)
    assert Path(path).name == "atpn68.int8-fp16.b1-4-8.trt8.5.2.jetson-orin-nano-sm87.engine"
    assert Path(path).parent == ROOT / "engines"
    # the app's 1:N:N and the CLI's 1:4:8 are two files, not one overwriting the other
    assert default_engine_path("models/atpn68.onnx", "fp16", "1:4:4", "trt8.5.2", nano) != path.replace("int8-", "")
    assert Path(default_engine_path("m/blazeface.onnx", "fp32", None, "trtrtx1.7.1", GpuInfo.any_of("8.9"))).name == \
        "blazeface.fp32.trtrtx1.7.1.sm89.engine"  # a static-shape model has no profile to name


def test_an_engine_for_a_compute_capability_runs_on_any_gpu_of_it():
    any_89 = GpuInfo.any_of("8.9")
    assert any_89.runs_on(GpuInfo("NVIDIA GeForce RTX 4090", "8.9")) and any_89.runs_on(GpuInfo("RTX 4060", "8.9"))
    assert not any_89.runs_on(GpuInfo("NVIDIA GeForce RTX 3090", "8.6"))
    assert not ORIN.runs_on(GpuInfo("Orin NX", "8.7"))  # full TensorRT: the GPU it was built on
    with pytest.raises(ConfigError, match="MAJOR.MINOR"):
        GpuInfo.any_of("sm89")


# ---------------------------------------------------------------- TensorRT version shims (our branching only)


def fake_trt(version: str, fp16_flag: bool = True, calibrators: bool = True, pools: bool = True,
             monitor: bool = True, explicit_batch: bool = True) -> SimpleNamespace:
    config_cls = type("IBuilderConfig", (), dict(
        {"int8_calibrator": None} if calibrators else {}, **({"set_memory_pool_limit": None} if pools else {}),
        **({"progress_monitor": None} if monitor else {}), create_timing_cache=None))
    flags = SimpleNamespace(**({"FP16": 1, "INT8": 2} if fp16_flag else {}))
    extra = {"IInt8EntropyCalibrator2": object} if calibrators else {}
    extra.update({"IProgressMonitor": object} if monitor else {})
    network_flags = SimpleNamespace(**({"EXPLICIT_BATCH": 0} if explicit_batch else {}), STRONGLY_TYPED=1)
    return SimpleNamespace(__name__="tensorrt", __version__=version, BuilderFlag=flags, IBuilderConfig=config_cls,
                           NetworkDefinitionCreationFlag=network_flags, MemoryPoolType=SimpleNamespace(WORKSPACE="ws"),
                           **extra)


# Attribute sets of releases we cannot install here, as read in their binding sources: 8.5 has no
# IProgressMonitor (9.0 brought it); 10.x keeps EXPLICIT_BATCH as an ignored member; 11 drops it,
# the precision flags and the calibrators. TensorRT-RTX itself is installed: tests/test_build_rtx.py.
JETPACK5 = dict(version="8.5.2.2", monitor=False)
JETPACK6 = dict(version="10.3.0")
TRT11 = dict(version="11.0.0.5", fp16_flag=False, calibrators=False, explicit_batch=False)


@pytest.mark.parametrize("trt_kwargs, explicit_flag, strong_only, monitor", [
    (JETPACK5, True, False, False), (JETPACK6, True, False, True), (TRT11, False, True, True)])
def test_features_per_tensorrt_release(trt_kwargs, explicit_flag, strong_only, monitor):
    f = compat.features_of(fake_trt(**trt_kwargs))
    assert (f.explicit_batch_flag, f.strongly_typed_only, f.progress_monitor) == (explicit_flag, strong_only, monitor)
    assert f.timing_cache and not f.target_compute_capability
    assert f.tag == "trt" + trt_kwargs["version"] and f.describe() == "TensorRT " + trt_kwargs["version"]


def test_network_flags_and_workspace_per_release():
    calls = []
    builder = SimpleNamespace(create_network=lambda flags: calls.append(flags))
    for kwargs in (JETPACK5, TRT11):
        trt = fake_trt(**kwargs)
        compat.create_network(trt, builder, compat.features_of(trt))
    assert calls == [1, 0]  # 1 << EXPLICIT_BATCH where the member exists, nothing where it is gone
    old = fake_trt("8.2.1", pools=False)
    config = SimpleNamespace()
    compat.set_workspace(old, config, compat.features_of(old), 256)
    assert config.max_workspace_size == 256 << 20
    limits = []
    new_config = SimpleNamespace(set_memory_pool_limit=lambda pool, size: limits.append((pool, size)))
    compat.set_workspace(fake_trt(**JETPACK6), new_config, compat.features_of(fake_trt(**JETPACK6)), 64)
    assert limits == [("ws", 64 << 20)]


def test_tensorrt_11_refuses_fp16_and_calibration_with_what_to_do():
    f = compat.features_of(fake_trt(**TRT11))
    with pytest.raises(EngineError, match="TensorRT 11.0.0.5 builds strongly typed networks only .* modelopt"):
        compat.check_precision(f, fp16=True, int8=False, qdq=False)
    with pytest.raises(EngineError, match="no INT8 calibrators: make a Q/DQ ONNX with `python -m edge.compile.quantize"):
        compat.check_precision(f, fp16=False, int8=True, qdq=False)
    compat.check_precision(f, fp16=False, int8=True, qdq=True)  # explicit quantization builds everywhere
    assert compat.set_precision(fake_trt(**TRT11), None, f, False, True) == ()


def test_full_tensorrt_refuses_a_target_compute_capability():
    from edge.compile.builder import target_gpu

    with pytest.raises(EngineError, match="TensorRT 10.3.0 builds for the GPU it runs on: drop --compute-capability"):
        target_gpu(compat.features_of(fake_trt(**JETPACK6)), "8.7")


@pytest.mark.parametrize("tag, text", [("trt10.3.0.30", "TensorRT 10.3.0.30"), ("trtrtx1.7.1.116", "TensorRT-RTX 1.7.1.116"),
                                       ("unknown", "unknown")])
def test_library_tags_read_back(tag, text):
    assert compat.describe_library(tag) == text


def test_without_a_progress_monitor_a_heartbeat_says_why():
    out = io.StringIO()
    trt = fake_trt(**JETPACK5)
    finish = compat.attach_progress(trt, SimpleNamespace(), compat.features_of(trt),
                                    compat.ProgressDisplay(out, heartbeat_s=0.01))
    deadline = time.monotonic() + 5
    while "[build]" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    finish()
    assert out.getvalue().startswith("[build] building (TensorRT 8.5.2.2 has no progress monitor, which came in 9.0)")


def test_the_calibration_cache_is_named_per_library_version(clip_set):
    from edge.compile.trt_calibrator import calibration_cache_path

    names = {Path(calibration_cache_path(clip_set, "atpn68", "a" * 64, tag)).name for tag in ("trt8.5.2.2", "trt8.6.2")}
    assert len(names) == 2 and all(n.startswith("atpn68-aaaaaaaaaaaa-") and n.endswith(".calib.cache") for n in names)
    assert any(".trt8.5.2.2." in n for n in names)


def test_progress_display_shows_top_phases_only():
    out = io.StringIO()
    display = compat.ProgressDisplay(out)
    display.phase_start("Building engine", None, 3)
    display.phase_start("Tactic timing", "Building engine", 10)
    display.phase_start("Layer 17", "Tactic timing", 5)
    assert display.step_complete("Layer 17", 0) is True
    lines = out.getvalue().splitlines()
    assert lines == ["[build] Building engine (3 steps)", "[build]   Tactic timing (10 steps)"]


# ---------------------------------------------------------------- bad input, on a machine without a GPU


def test_plan_rejects_bad_models_and_calibration_sets(tmp_path):
    onnx = str(model_path("atpn68.onnx"))
    with pytest.raises(ModelError, match="model file not found"):
        plan_build(BuildRequest(onnx=str(tmp_path / "none.onnx")))
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model")
    with pytest.raises(ModelError, match="ONNX Runtime cannot load it"):
        plan_build(BuildRequest(onnx=str(text)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CalibrationError, match="holds no .npy crops"):
        plan_build(BuildRequest(onnx=onnx, int8=True, calib=str(tmp_path / "empty")))
    write_calibration_set(str(tmp_path / "small"), np.zeros((4, 3, 96, 96), np.float32), {})
    with pytest.raises(CalibrationError, match="crops are 3x96x96 but .*'crop' takes 3x112x112"):
        plan_build(BuildRequest(onnx=onnx, int8=True, calib=str(tmp_path / "small")))
    with pytest.raises(ModelError, match="has no Q/DQ nodes"):
        plan_build(BuildRequest(onnx=onnx, int8=True, qdq=True))
    plan = plan_build(BuildRequest(onnx=onnx, batch="1:2:4"))
    assert plan.profile["crop"]["max"] == [4, 3, 112, 112] and "atpn_spec" in plan.onnx.metadata


def test_a_qdq_model_must_be_built_as_qdq(qdq_model):
    with pytest.raises(ModelError, match="build it with --int8 --qdq"):
        plan_build(BuildRequest(onnx=str(qdq_model), fp16=True))
    assert plan_build(BuildRequest(onnx=str(qdq_model), int8=True, qdq=True)).onnx.has_qdq


def run_cli(*args: str, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "build_engine.py"), *args], capture_output=True, text=True,
                          cwd=str(ROOT), timeout=120, env=dict(os.environ, **(env or {})))


@pytest.mark.parametrize("args, message", [
    (["--onnx", "models/missing.onnx"], "error: models/missing.onnx: model file not found"),
    (["--onnx", "README.md"], "error: README.md: ONNX Runtime cannot load it"),
    (["--onnx", "models/atpn68.onnx", "--int8", "--calib", "calibration/does-not-exist"],
     "error: calibration/does-not-exist: calibration folder not found"),
    (["--onnx", "models/atpn68.onnx", "--batch", "8:1:1"], "error: --batch must be MIN:OPT:MAX"),
    ([], "error: no model to build: pass --onnx"),
])
def test_build_engine_cli_exits_2_with_one_line(args, message):
    model_path("atpn68.onnx")
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, result.stderr


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_without_tensorrt_the_cli_says_how_to_install_it():
    model_path("atpn68.onnx")
    result = run_cli("--onnx", "models/atpn68.onnx", "--fp16", env={compat.LIBRARY_ENV: compat.FULL})
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "no TensorRT Python package loads (tensorrt: No module named 'tensorrt')" in result.stderr
    for hint in ("sudo apt install python3-libnvinfer", "--system-site-packages", "pip install tensorrt",
                 "pip install tensorrt-rtx-cu12"):
        assert hint in result.stderr


def test_without_a_cuda_driver_the_gpu_probe_says_so():
    from edge.runtime.gpu import query_gpu
    import ctypes.util

    if ctypes.util.find_library("cuda"):
        pytest.skip("a CUDA driver is installed here")
    with pytest.raises(EngineError, match="no CUDA driver"):
        query_gpu()


def test_compare_outputs_measures_shifts():
    rng = np.random.default_rng(0)
    lm = rng.uniform(0.2, 0.8, (5, 68, 2)).astype(np.float32)
    lm[:, 36], lm[:, 45] = (0.3, 0.4), (0.7, 0.4)  # outer eye corners 0.4 crop apart
    ref = {"landmarks": lm, "pose": np.zeros((5, 3)), "track": np.full((5, 1), 0.6), "heatmap": np.zeros((5, 1, 2, 2))}
    same = compare_outputs(ref, ref, 112)
    assert same.landmarks_px == 0 and same.nme_iod == 0 and same.nme_crops == 5
    moved = dict(ref, landmarks=lm + np.array([0.01, 0.0], np.float32), pose=np.ones((5, 3)),
                 track=np.full((5, 1), 0.4))
    diff = compare_outputs(ref, moved, 112)
    assert diff.landmarks_px == pytest.approx(1.12, abs=1e-4) and diff.nme_iod == pytest.approx(0.025, abs=1e-5)
    assert diff.pose_deg == 1 and diff.track == pytest.approx(0.2) and diff.track_flips == 1
