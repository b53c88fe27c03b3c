"""Where results go, by URI, like jetson-inference's videoOutput: one Sink per target, opened only if asked for.

    out.mp4 | file://out.mp4     the annotated video          (video.py)
    out.jsonl                    one JSON line per frame      (jsonl.py)
    display://0                  a live window                (display.py)
    mqtt://[user:pass@]host[:port]/topic[?qos=1] | mqtts://   one message per frame with faces (mqtt.py)

A new sink is one file here with a class taking (target, SinkOptions) plus one line in SINKS.
Every sink hands on each result as it is made, so a stop or a crash never loses one already computed.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Protocol, Sequence

import numpy as np

from edge.errors import ConfigError
from edge.fileio import ensure_parent
from edge.types import Face, Frame

# A target names its sink by URI scheme ("mqtt://") or, for a plain path, by file suffix (".mp4").
SINKS: Dict[str, str] = {
    "display://": "edge.io.sinks.display:DisplaySink",
    "mqtt://": "edge.io.sinks.mqtt:MqttSink",
    "mqtts://": "edge.io.sinks.mqtt:MqttSink",
    ".jsonl": "edge.io.sinks.jsonl:JsonLinesSink",
    ".mp4": "edge.io.sinks.video:VideoSink",
}


@dataclass(frozen=True)
class FrameResult:
    """One frame's results as every sink sees them: the frame, its faces, and the stage times so far (ms)."""

    frame: Frame
    faces: Sequence[Face]
    stage_ms: Mapping[str, float]
    stills: bool = False  # the frame was processed as a photo on its own, not tracked from the one before


@dataclass(frozen=True)
class SinkOptions:
    fps: float = 30.0  # the source's rate, for a video's timing
    flag: str = "--output"  # the CLI flag the target came from, so an error names what to change
    log: Callable[[str], None] = lambda line: None  # one line for events a user should see (a broker lost)


class Sink(Protocol):
    """Anything results can go to. `write` returns False when the user asked to stop (a closed window)."""

    uri: str
    wants_picture: bool  # True: `write` gets the annotated frame (video, window); False: None (JSON, MQTT)

    def write(self, result: FrameResult, picture: Optional[np.ndarray]) -> bool: ...

    def close(self) -> None: ...


def face_record(face: Face) -> Dict[str, object]:
    return {"id": face.track_id, "state": face.state.value, "score": round(face.score, 4),
            "box": _rounded(face.box_xyxy), "landmarks": _rounded(face.landmarks_px),
            "pose": _rounded(face.pose_ypr_deg)}


def frame_record(result: FrameResult) -> Dict[str, object]:
    """The JSON object of one frame, the same in a JSON-lines file and an MQTT message."""
    frame = result.frame
    record: Dict[str, object] = {"index": frame.index, "t_ms": round(frame.t_ms, 2),
                                 "mode": "stills" if result.stills else "sequence",
                                 "faces": [face_record(f) for f in result.faces],
                                 "ms": {k: round(v, 3) for k, v in result.stage_ms.items()}}
    if frame.name:
        record["file"] = frame.name
    if frame.gap_s:  # the first frame after a live source came back: the seconds without frames before it
        record["gap_s"] = round(frame.gap_s, 2)
    return record


def _rounded(a: np.ndarray) -> List:
    return np.round(np.asarray(a, dtype=np.float64), 2).tolist()


def output_path(path: str, flag: str) -> str:
    """`path` with its folder made, checked before any work is done (a long run must not fail at its
    first frame or its end): a one-line ConfigError when a file stands where a folder must be, or the
    path is a folder."""
    try:
        ensure_parent(path)
    except OSError as exc:
        folder = os.path.dirname(os.path.abspath(path))
        while not os.path.isdir(folder) and not os.path.exists(folder):
            folder = os.path.dirname(folder)
        why = f"{folder} is a file, not a folder" if not os.path.isdir(folder) else exc.strerror
        raise ConfigError(f"{flag} {path}: cannot write there ({why}); pick another path") from exc
    if os.path.isdir(path):
        raise ConfigError(f"{flag} {path}: is a folder; name a file in it")
    return path


def sink_key(target: str, flag: str = "--output") -> str:
    """The SINKS key `target` names: its scheme, else its file suffix; a one-line ConfigError when neither is known."""
    scheme, sep, rest = target.partition("://")
    if sep and scheme != "file":
        key = scheme.lower() + "://"
    else:
        key = os.path.splitext(rest if sep else target)[1].lower()
    if key not in SINKS:
        raise ConfigError(f"{flag} {target}: no sink for {key or 'a path without a suffix'}; use one of "
                          f"{', '.join(SINKS)} (e.g. out.mp4, out.jsonl, display://0, mqtt://host/topic)")
    return key


def open_sink(target: str, options: SinkOptions = SinkOptions(), key: Optional[str] = None) -> Sink:
    """The sink `target` names (or the one registered under `key`, for the --save/--json aliases)."""
    module, _, name = SINKS[key or sink_key(target, options.flag)].partition(":")
    if target.startswith("file://"):
        target = target[len("file://"):]
    try:
        sink_class = getattr(importlib.import_module(module), name)
    except ImportError as exc:  # a sink's own package (paho-mqtt) where only the core was installed
        raise ConfigError(f"{options.flag} {target}: needs the Python package '{exc.name}'; "
                          "pip install -r requirements.txt (or requirements-jetson.txt)") from exc
    return sink_class(target, options)  # type: ignore[no-any-return]


class Sinks:
    """Every sink of a run. The overlay is drawn once per frame, only when a sink shows pictures; sinks that
    record (JSON, MQTT) are written after those, so their line holds the times up to its own writing."""

    def __init__(self, sinks: Sequence[Sink] = (), overlay: Optional[object] = None) -> None:
        self.overlay = overlay  # anything with annotate(image, faces) -> image (pipeline/render.py)
        self.pictures = [s for s in sinks if s.wants_picture]
        self.records = [s for s in sinks if not s.wants_picture]
        if self.pictures and overlay is None:
            raise ValueError("sinks that show pictures need an overlay to draw them")

    def draw(self, frame: Frame, faces: Sequence[Face]) -> np.ndarray:
        return self.overlay.annotate(frame.image, faces)  # type: ignore[union-attr]

    def show(self, result: FrameResult, picture: np.ndarray) -> bool:
        """Every picture sink gets the frame; False when one of them asks to stop."""
        return all([sink.write(result, picture) for sink in self.pictures])

    def record(self, result: FrameResult) -> None:
        for sink in self.records:
            sink.write(result, None)

    def close(self) -> None:
        """Closes every sink, even after one fails to; the first failure is raised once all are closed."""
        failure: Optional[BaseException] = None
        for sink in self.pictures + self.records:
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001 - the others must still close (a video must be finalised)
                failure = failure or exc
        if failure is not None:
            raise failure
