"""The `build:` section of a YAML config and the flags on top of it -> a BuildRequest (build_engine.py)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

from edge.config import read_yaml
from edge.errors import ConfigError
from edge.runtime.engine_request import BuildRequest

_KEY_TYPES: Dict[str, Tuple[type, ...]] = {
    "onnx": (str,), "fp16": (bool,), "int8": (bool,), "qdq": (bool,), "calib": (str,), "batch": (str, int),
    "workspace": (int,), "timing_cache": (str,), "save_engine": (str,), "compute_capability": (str,),
}


def request_from(config_path: Optional[str], overrides: Mapping[str, Any]) -> BuildRequest:
    """The `build:` section of a YAML config (if given), then the CLI flags that were set on top."""
    values: Dict[str, Any] = dict(_build_section(config_path)) if config_path else {}
    values.update({k: v for k, v in overrides.items() if v is not None and v is not False})
    if not values.get("onnx"):
        raise ConfigError("no model to build: pass --onnx MODEL.onnx (or set build.onnx in --config)")
    values["batch"] = str(values.get("batch", BuildRequest.batch))
    return replace(BuildRequest(onnx=str(values.pop("onnx"))), **values)


def _build_section(path: str) -> Mapping[str, Any]:
    data = read_yaml(Path(path)) or {}
    section = data.get("build") if isinstance(data, Mapping) else None
    if not isinstance(section, Mapping):
        raise ConfigError(f"{path}: no 'build:' section; valid keys there: {', '.join(_KEY_TYPES)}")
    for key, value in section.items():
        if key not in _KEY_TYPES:
            raise ConfigError(f"{path}: unknown key 'build.{key}'; valid keys: {', '.join(_KEY_TYPES)}")
        if not isinstance(value, _KEY_TYPES[key]) or (isinstance(value, bool) and bool not in _KEY_TYPES[key]):
            raise ConfigError(f"{path}: build.{key} must be {_KEY_TYPES[key][0].__name__}, got {value!r}")
    return section
