"""Run settings: a YAML file (configs/*.yaml) -> frozen dataclasses, every key and value checked.

An unknown key or a bad value is a one-line ConfigError naming the key, so a typo never passes
silently. CLI flags override the file through `with_overrides` and go through the same checks.
Relative model paths are taken from the project root, so the CLI works from any directory.
"""
from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Type, TypeVar

from edge.errors import ConfigError
from edge.fileio import PROJECT_ROOT
from edge.io.sources import LiveOptions
from edge.runtime import BACKENDS

DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "cpu.yaml"
DISPLAY_MODES = ("auto", "on", "off")
SPIN_MODES = ("auto", "on", "off")
OTHER_TOOLS_SECTIONS = ("build",)  # build_engine.py reads it (edge/compile/request.py): one file per device serves both
T = TypeVar("T")


def cores() -> int:
    """The CPU cores this process may run on (a container's or taskset's share, not the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def require(ok: bool, key: str, expected: str, value: object) -> None:
    """The one-line error for a bad value, naming the key (used by every config dataclass)."""
    if not ok:
        raise ConfigError(f"{key} must be {expected}, got {value!r}")


@dataclass(frozen=True)
class ModelsConfig:
    atpn: str = "models/atpn68_integral.onnx"  # the integral head; models/atpn68.onnx (regression) is ~30 % faster
    atpn_stills: str = "models/atpn68_stills.onnx"  # photos (see stills): 1.5x wider, 128 px, ~2.2x the time per crop; "" = atpn
    detector: str = "models/blazeface_short.onnx"  # tried first: close faces, 128 px, cheap
    detector_far: str = "models/blazeface_full.onnx"  # when the first finds nothing: distant faces; "" = off

    def detector_paths(self) -> List[str]:
        return [self.path(name) for name in ("detector", "detector_far") if getattr(self, name)]

    def atpn_path(self, stills: bool) -> str:
        return self.path("atpn_stills" if stills and self.atpn_stills else "atpn")

    def path(self, name: str) -> str:
        p = Path(getattr(self, name))
        return str(p if p.is_absolute() else PROJECT_ROOT / p)


PRECISIONS = ("fp32", "fp16")  # INT8: build the engine with build_engine.py and point models.* at the .engine


@dataclass(frozen=True)
class RuntimeConfig:
    backend: str = "onnxruntime"
    threads: int = 0  # ONNX Runtime intra-op threads for ATPN (every frame); 0 = all cores
    detector_threads: int = 1  # for the detector (a few frames): one leaves the other cores to the loop
    precision: str = "fp16"  # TensorRT engines built from ONNX models on first use (cached in engines/)
    mirror_average: bool = False  # ATPN also sees each crop mirrored and averages: lower NME, 2x ATPN work
    # ONNX Runtime's idle threads busy-wait (on) or sleep (off) between calls; auto: sleep when a live source
    # paces the loop (7x less CPU at 30 FPS), spin when it runs flat out on a file (~25 % more FPS)
    spin: str = "auto"

    def spins(self, live_source: bool) -> bool:
        return self.spin == "on" or (self.spin == "auto" and not live_source)

    def __post_init__(self) -> None:
        require(self.backend in BACKENDS, "runtime.backend", f"one of {', '.join(BACKENDS)}", self.backend)
        require(self.spin in SPIN_MODES, "runtime.spin", f"one of {', '.join(SPIN_MODES)}", self.spin)
        require(self.precision in PRECISIONS, "runtime.precision", f"one of {', '.join(PRECISIONS)}", self.precision)
        for key in ("threads", "detector_threads"):  # more threads than cores only fight (32 on 2 cores: 10x slower)
            value = getattr(self, key)
            require(0 <= value <= cores(), f"runtime.{key}", f"0 to {cores()}, this machine's cores (0 = all)", value)


@dataclass(frozen=True)
class DetectorConfig:
    score_threshold: Optional[float] = None  # None: MediaPipe's for the model (short 0.5, full 0.6)

    def __post_init__(self) -> None:
        require(self.score_threshold is None or 0.0 < self.score_threshold < 1.0, "detector.score_threshold",
                 "in (0, 1), or null for the model's default", self.score_threshold)


@dataclass(frozen=True)
class TrackerConfig:
    track_threshold: float = 0.5  # ATPN track score below this ends a track
    detect_every: int = 30  # also re-detect every K frames to pick up new faces; 0 = only on loss
    max_faces: int = 4
    match_iou: float = 0.3  # a detection overlapping a track this much is that track's face
    min_face_px: float = 8.0  # a landmark box smaller than this is a lost track, not a face
    hold_frames: int = 2  # a detection ATPN doubts keeps its crop this many frames before re-detecting
    vouch_score: float = 0.6  # a face ATPN doubts is reported on the detector's word only from this score
    idle_grace: int = 5  # with no face tracked, search every frame this long first (a face lost at a cut is back)
    idle_detect_every: int = 3  # ... then every K-th frame (DeepStream's `interval`; 1 = every)

    def __post_init__(self) -> None:
        require(0.0 <= self.track_threshold <= 1.0, "tracker.track_threshold", "in [0, 1]", self.track_threshold)
        require(self.detect_every >= 0, "tracker.detect_every", ">= 0 (0 = only when no track is alive)",
                 self.detect_every)
        require(self.max_faces >= 1, "tracker.max_faces", ">= 1", self.max_faces)
        require(0.0 < self.match_iou <= 1.0, "tracker.match_iou", "in (0, 1]", self.match_iou)
        require(self.min_face_px >= 1.0, "tracker.min_face_px", ">= 1", self.min_face_px)
        require(self.hold_frames >= 0, "tracker.hold_frames", ">= 0 (0 = re-detect on the next frame)",
                 self.hold_frames)
        require(self.idle_grace >= 0, "tracker.idle_grace", ">= 0 frames", self.idle_grace)
        require(self.idle_detect_every >= 1, "tracker.idle_detect_every", ">= 1 (1 = search every frame)",
                 self.idle_detect_every)
        require(0.0 <= self.vouch_score <= 1.0, "tracker.vouch_score", "in [0, 1] (1 = only faces ATPN accepts)",
                 self.vouch_score)


@dataclass(frozen=True)
class SourceConfig:
    input: str = "auto"  # a URI (see edge.io.uri.USAGE); auto = camera 0 if it opens, else demo
    max_frames: int = 0  # 0 = until the source ends
    # A live source (camera, RTSP/HTTP stream) that drops is reopened: sources.LiveOptions says how.
    reconnect_s: float = LiveOptions.reconnect_s  # first wait before reopening; doubles after each failed try
    reconnect_max_s: float = LiveOptions.reconnect_max_s  # longest wait between tries
    give_up_s: float = LiveOptions.give_up_s  # exit 2 when not back after this long (0 = keep trying)
    open_timeout_s: float = LiveOptions.open_timeout_s  # a stream that does not answer when opened
    read_timeout_s: float = LiveOptions.read_timeout_s  # a stream silent this long counts as dropped

    def live(self) -> LiveOptions:
        return LiveOptions(**{f.name: getattr(self, f.name) for f in fields(LiveOptions)})

    def __post_init__(self) -> None:
        require(bool(self.input.strip()), "source.input", "a source URI", self.input)
        require(self.max_frames >= 0, "source.max_frames", ">= 0 (0 = no limit)", self.max_frames)
        for key in ("reconnect_s", "open_timeout_s", "read_timeout_s"):
            require(getattr(self, key) > 0, f"source.{key}", "> 0 seconds", getattr(self, key))
        require(self.reconnect_max_s >= self.reconnect_s, "source.reconnect_max_s", ">= source.reconnect_s",
                self.reconnect_max_s)
        require(self.give_up_s >= 0, "source.give_up_s", ">= 0 seconds (0 = keep trying)", self.give_up_s)


STILLS_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class StillsConfig:
    """Photos are independent: each is detected and refined on its own, never tracked from the one before
    (MediaPipe's static_image_mode). `python -m edge.eval landmarks` measures exactly this path."""

    mode: str = "auto"  # auto: an image file or a folder of images runs as stills; on: any source; off: as a sequence
    passes: int = 2  # ATPN passes per face; each one more re-crops from the last landmarks
    refine_scale: float = 1.35  # crop side / landmark box of those re-crops: tighter than the first crop, which
    # must allow for the detector's box error (the model's own ModelSpec.crop_scale is 1.45)

    def __post_init__(self) -> None:
        require(self.mode in STILLS_MODES, "stills.mode", f"one of {', '.join(STILLS_MODES)}", self.mode)
        require(self.passes >= 1, "stills.passes", ">= 1", self.passes)
        require(1.0 < self.refine_scale <= 3.0, "stills.refine_scale", "in (1, 3]", self.refine_scale)

    def applies_to(self, source_is_photos: bool) -> bool:
        return self.mode == "on" or (self.mode == "auto" and source_is_photos)


@dataclass(frozen=True)
class OutputConfig:
    display: str = "auto"
    save: Optional[str] = None  # annotated video, .mp4
    json: Optional[str] = None  # one JSON line per frame
    targets: Tuple[str, ...] = ()  # sinks by URI (edge.io.sinks): out.mp4, out.jsonl, display://0, mqtt://host/topic
    quiet: bool = False

    def sink_targets(self) -> List[Tuple[str, Optional[str], str]]:
        """(target, SINKS key or None to pick by the target, the flag it came from) for every sink asked for:
        --save and --json are aliases of an .mp4 and a .jsonl --output; --display adds display://0."""
        from edge.io.sinks.display import display_targets

        aliases = [(self.save, ".mp4", "--save"), (self.json, ".jsonl", "--json")]
        return ([(path, key, flag) for path, key, flag in aliases if path] +
                [(target, None, "--output") for target in self.targets] +
                [(target, None, "--display") for target in display_targets(self.display) if target not in self.targets])

    def __post_init__(self) -> None:
        require(self.display in DISPLAY_MODES, "output.display", f"one of {', '.join(DISPLAY_MODES)}", self.display)


@dataclass(frozen=True)
class Config:
    models: ModelsConfig = field(default_factory=ModelsConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    source: SourceConfig = field(default_factory=SourceConfig)
    stills: StillsConfig = field(default_factory=StillsConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def with_overrides(self, overrides: Mapping[str, Any]) -> "Config":
        """Dotted keys ('tracker.detect_every') -> a new, checked Config; None values are skipped."""
        data = asdict(self)
        for dotted, value in overrides.items():
            if value is None:
                continue
            section, _, key = dotted.partition(".")
            data.setdefault(section, {})[key] = value
        return config_from_dict(data)


_TYPES: Dict[str, Tuple[type, ...]] = {"str": (str,), "Optional[str]": (str, type(None)), "int": (int,),
                                       "float": (float, int), "Optional[float]": (float, int, type(None)),
                                       "bool": (bool,), "Tuple[str, ...]": (list, tuple)}


def config_from_dict(data: Any, where: str = "config") -> Config:
    """Check every section, key and value; the first problem is a one-line ConfigError. Another tool's
    section (`build:`) is left to that tool."""
    if isinstance(data, Mapping):
        data = {name: value for name, value in data.items() if name not in OTHER_TOOLS_SECTIONS}
    return sections_from_dict(Config, data, where)


def sections_from_dict(root: Type[T], data: Any, where: str) -> T:
    """Any frozen dataclass of section dataclasses (str/int/float/bool/Optional[str] fields) from a mapping.

    Shared with other YAML configs (e.g. training) so every config reports problems the same way.
    """
    sections = {f.name: f for f in fields(root)}  # type: ignore[arg-type]
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of sections ({', '.join(sections)}), got {type(data).__name__}")
    values = {}
    for name, value in data.items():
        if name not in sections:
            raise ConfigError(f"{where}: unknown section '{name}'; valid sections: {', '.join(sections)}")
        values[name] = section(sections[name].default_factory, name, value or {}, where)  # type: ignore[misc]
    return root(**values)


def section(cls: type, name: str, data: Any, where: str) -> Any:
    """One YAML mapping -> a frozen dataclass; an unknown key is an error listing the valid ones."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: section '{name}' must be a mapping of keys, got {data!r}")
    known = {f.name: f for f in fields(cls)}
    for key in data:
        if key not in known:
            raise ConfigError(f"{where}: unknown key '{name}.{key}'; valid keys in '{name}': {', '.join(known)}")
    try:
        values = {key: _checked_value(f"{name}.{key}", str(known[key].type), value) for key, value in data.items()}
        return cls(**values)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _checked_value(key: str, type_name: str, value: Any) -> Any:
    expected = _TYPES[type_name]
    if isinstance(value, bool) and str in expected:
        value = "on" if value else "off"  # YAML 1.1 reads bare on/off/yes/no as booleans
    elif isinstance(value, int) and not isinstance(value, bool) and str in expected:
        value = str(value)  # `input: 0` is camera 0
    if isinstance(value, bool) and bool not in expected:
        raise ConfigError(f"{key} must be {type_name}, got the boolean {value!r}")
    if not isinstance(value, expected):
        raise ConfigError(f"{key} must be {type_name}, got {value!r} ({type(value).__name__})")
    if type_name.startswith("Tuple[str"):
        if not all(isinstance(item, str) for item in value):
            raise ConfigError(f"{key} must be a list of strings, got {value!r}")
        return tuple(value)
    return float(value) if "float" in type_name and value is not None else value


_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"


@lru_cache(maxsize=None)
def _loader() -> Any:
    """PyYAML's safe loader without YAML 1.1's base-60 numbers, which read an unquoted `batch: 1:4:8` as the
    integer 3848; here it stays the string it looks like (every other number reads as before)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.yaml_implicit_resolvers = {  # type: ignore[assignment]
        first: [(tag, regex) for tag, regex in resolvers if tag not in (_INT, _FLOAT)]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    Loader.add_implicit_resolver(_INT, re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)"
                                                  r"|[-+]?0x[0-9a-fA-F_]+)$"), list("-+0123456789"))
    Loader.add_implicit_resolver(_FLOAT, re.compile(r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?"
                                                    r"|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?\.(?:inf|Inf|INF)"
                                                    r"|\.(?:nan|NaN|NAN))$"), list("-+0123456789."))
    return Loader


def read_yaml(path: Path) -> Any:
    """A YAML file's data, or a one-line ConfigError naming the file (and the line of a syntax error)."""
    import yaml

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}; pass an existing file to --config") from exc
    try:
        return yaml.load(text, Loader=_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{at} ({getattr(exc, 'problem', None) or exc})") from exc


def load_config(path: Optional[str] = None) -> Config:
    """Read a YAML config (default configs/cpu.yaml); an empty file means all defaults."""
    file = Path(path) if path else DEFAULT_CONFIG
    return config_from_dict(read_yaml(file) or {}, where=str(file))
