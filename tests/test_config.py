"""Config files: presets load, every bad key or value is a one-line ConfigError naming it."""
from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import Config, config_from_dict, load_config
from edge.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [ROOT / "configs" / name
           for name in ("cpu.yaml", "cpu_accurate.yaml", "jetson_orin_nano.yaml", "jetson_xavier_nx.yaml")]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_presets_load(path):
    config = load_config(str(path))
    assert config.runtime.backend in ("onnxruntime", "tensorrt")


def test_default_is_cpu():
    assert load_config() == load_config(str(CONFIGS[0]))
    assert load_config().runtime.backend == "onnxruntime"


@pytest.mark.parametrize("data, check", [
    ({}, lambda c: c == Config()),
    ({"tracker": {"detect_every": 0}}, lambda c: c.tracker.detect_every == 0),
    ({"tracker": {"track_threshold": 1}}, lambda c: c.tracker.track_threshold == 1.0),  # int for a float
    ({"runtime": {"backend": "tensorrt"}}, lambda c: c.runtime.backend == "tensorrt"),
    ({"output": {"display": False}}, lambda c: c.output.display == "off"),  # YAML's bare `off`
    ({"source": {"input": 0}}, lambda c: c.source.input == "0"),  # YAML's bare camera number
    ({"output": {"save": None, "json": "x.jsonl"}}, lambda c: c.output.save is None and c.output.json == "x.jsonl"),
    ({"tracker": None}, lambda c: c.tracker == Config().tracker),  # an empty section
    ({"detector": {"score_threshold": None}}, lambda c: c.detector.score_threshold is None),
    ({"detector": {"score_threshold": 0.7}}, lambda c: c.detector.score_threshold == 0.7),
])
def test_valid(data, check):
    assert check(config_from_dict(data))


@pytest.mark.parametrize("data, names", [
    ({"trackr": {}}, ["'trackr'", "tracker"]),
    ({"tracker": {"detect_evry": 3}}, ["'tracker.detect_evry'", "detect_every", "max_faces"]),
    ({"tracker": {"detect_every": -1}}, ["tracker.detect_every", "-1"]),
    ({"tracker": {"detect_every": 2.5}}, ["tracker.detect_every", "int"]),
    ({"tracker": {"track_threshold": 1.5}}, ["tracker.track_threshold", "[0, 1]"]),
    ({"tracker": {"track_threshold": "high"}}, ["tracker.track_threshold", "'high'"]),
    ({"tracker": {"max_faces": 0}}, ["tracker.max_faces"]),
    ({"tracker": {"max_faces": True}}, ["tracker.max_faces", "boolean"]),
    ({"runtime": {"backend": "trt"}}, ["runtime.backend", "onnxruntime, tensorrt"]),
    ({"runtime": {"threads": -2}}, ["runtime.threads"]),
    ({"output": {"display": "maybe"}}, ["output.display", "auto, on, off"]),
    ({"detector": {"score_threshold": 0}}, ["detector.score_threshold"]),
    ({"source": {"input": ""}}, ["source.input"]),
    ({"source": {"reconnect_s": 0}}, ["source.reconnect_s", "> 0 seconds"]),
    ({"source": {"reconnect_s": 5, "reconnect_max_s": 2}}, ["source.reconnect_max_s", ">= source.reconnect_s"]),
    ({"source": {"give_up_s": -1}}, ["source.give_up_s", "0 = keep trying"]),
    ({"tracker": [1, 2]}, ["section 'tracker'"]),
    ([1, 2], ["mapping of sections"]),
])
def test_invalid(data, names):
    with pytest.raises(ConfigError) as err:
        config_from_dict(data)
    message = str(err.value)
    assert "\n" not in message
    for name in names:
        assert name in message


def test_overrides_are_checked_like_the_file():
    config = Config().with_overrides({"tracker.detect_every": 5, "runtime.backend": None})
    assert config.tracker.detect_every == 5 and config.runtime.backend == "onnxruntime"
    with pytest.raises(ConfigError, match="tracker.track_threshold"):
        Config().with_overrides({"tracker.track_threshold": 2.0})


@pytest.mark.parametrize("text, message", [
    ("tracker: {detect_every: 3", "not valid YAML"),
    ("tracker:\n  bogus: 1\n", "unknown key 'tracker.bogus'"),
    ("runtime:\n  threads: many\n", "runtime.threads"),
])
def test_file_errors_name_the_file(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(str(path))
    assert "bad.yaml" in str(err.value) and "\n" not in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(str(tmp_path / "nope.yaml"))


def test_threads_are_bounded_by_the_cores():
    """More ONNX Runtime threads than cores only fight over them (32 on 2 cores: 10x slower, 1000 hung)."""
    from edge.config import cores

    assert config_from_dict({"runtime": {"threads": cores(), "detector_threads": cores()}}).runtime.threads == cores()
    for key in ("threads", "detector_threads"):
        with pytest.raises(ConfigError, match=f"runtime.{key} must be 0 to {cores()}, this machine's cores"):
            config_from_dict({"runtime": {key: cores() + 1}})


def test_the_build_engine_help_example_builds_the_loops_engine_from_the_same_file():
    """`build_engine.py --help` shows `--config configs/jetson_orin_nano.yaml`: each device file's `build:`
    section (left alone by run_camera.py) asks for the ATPN engine the loop builds from that file."""
    import re

    import build_engine
    from edge.compile.request import request_from

    examples = re.findall(r"--config (configs/\S+\.yaml)", build_engine.__doc__ or "")
    assert examples
    for path in {ROOT / p for p in examples} | {p for p in CONFIGS if p.name.startswith("jetson")}:
        config, request = load_config(str(path)), request_from(str(path), {})
        crops = config.tracker.max_faces * (2 if config.runtime.mirror_average else 1)  # as app.open_pipeline asks
        assert ROOT / request.onnx == Path(config.models.path("atpn"))
        assert request.fp16 == (config.runtime.precision == "fp16") and request.batch == f"1:{crops}:{crops}"
