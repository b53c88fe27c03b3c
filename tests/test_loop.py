"""The loop with the real engines (models from `make models`): outputs, JSON lines, statistics, crashes, bad inputs."""
from __future__ import annotations

import json
import re
import time
from contextlib import ExitStack
from typing import Iterator

import cv2
import numpy as np
import pytest

from conftest import model_path
from edge.config import Config
from edge.errors import ConfigError, ModelError, SourceError
from edge.app.run import open_pipeline
from edge.app.benchmark import benchmark, decode_frames
from edge.io.demo import render_demo_frame
from edge.pipeline.loop import run_loop
from edge.io.sinks import FrameResult, Sinks
from edge.io.sinks.jsonl import JsonLinesSink
from edge.io.sinks.video import VideoSink
from edge.pipeline.render import default_overlay
from edge.io.sources import FolderSource, MemorySource
from edge.pipeline.stats import STAGES, RunStats
from edge.types import Face, Frame, TrackState

CPU = Config().with_overrides({"runtime.threads": 1})


@pytest.fixture(scope="module")
def pipeline():
    model_path("atpn68.onnx")
    model_path("blazeface_full.onnx")
    with ExitStack() as stack:
        yield open_pipeline(CPU, stack)


@pytest.fixture(scope="module")
def demo_frames(astronaut_bgr):
    return [render_demo_frame(astronaut_bgr, i) for i in (0, 1, 2, 60, 205, 206, 250)]


def read_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_writes_one_json_line_and_one_video_frame_per_frame(tmp_path, pipeline, demo_frames):
    stats = RunStats()
    outputs = Sinks([VideoSink(str(tmp_path / "o.mp4")), JsonLinesSink(str(tmp_path / "o.jsonl"))],
                    default_overlay(lambda: stats.fps))
    try:
        run_loop(MemorySource(demo_frames), pipeline, outputs, stats)
    finally:
        outputs.close()
    lines = read_lines(tmp_path / "o.jsonl")
    assert [line["index"] for line in lines] == list(range(len(demo_frames)))
    assert all(set(line) == {"index", "t_ms", "mode", "faces", "ms"} and line["mode"] == "sequence" for line in lines)
    assert all(set(line["ms"]) <= set(STAGES) and line["ms"]["total"] > 0 for line in lines)
    assert "detect" in lines[0]["ms"]  # the first frame always runs the detector
    summary = stats.summary()
    assert summary["frames"] == len(demo_frames) and 0 < summary["detector_fraction"] <= 1
    video = cv2.VideoCapture(str(tmp_path / "o.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == len(demo_frames)


def test_max_frames_stops_early(pipeline, demo_frames):
    stats = run_loop(MemorySource(demo_frames), pipeline, Sinks(), RunStats(), max_frames=3)
    assert stats.frames == 3


class CrashingSource(MemorySource):
    def __iter__(self) -> Iterator[Frame]:
        for frame in super().__iter__():
            yield frame
        raise RuntimeError("camera on fire")


def test_json_lines_are_complete_when_the_loop_dies(tmp_path, pipeline, demo_frames):
    outputs = Sinks([JsonLinesSink(str(tmp_path / "o.jsonl"))])
    with pytest.raises(RuntimeError, match="on fire"):
        run_loop(CrashingSource(demo_frames[:4]), pipeline, outputs, RunStats())
    assert len(read_lines(tmp_path / "o.jsonl")) == 4  # read before close: every line already flushed
    outputs.close()


def test_face_json_record(tmp_path):
    face = Face(7, TrackState.TRACKED, np.array([1, 2, 30, 40], np.float32), np.full((68, 2), 5.123, np.float32),
                np.array([10.0, -5.0, 3.0], np.float32), 0.8765)
    writer = JsonLinesSink(str(tmp_path / "f.jsonl"))
    writer.write(FrameResult(Frame(np.zeros((4, 4, 3), np.uint8), 3, 100.0), [face], {"total": 1.23456}), None)
    writer.close()
    (line,) = read_lines(tmp_path / "f.jsonl")
    (record,) = line["faces"]
    assert record["id"] == 7 and record["state"] == "tracked" and record["score"] == 0.8765
    assert record["box"] == [1, 2, 30, 40] and record["pose"] == [10, -5, 3]
    assert len(record["landmarks"]) == 68 and record["landmarks"][0] == [5.12, 5.12]
    assert line["ms"] == {"total": 1.235}


def test_overlay_draws_on_a_copy():
    image = np.zeros((120, 160, 3), np.uint8)
    face = Face(1, TrackState.DETECTED, np.array([40, 30, 100, 90], np.float32),
                np.random.default_rng(0).uniform(45, 95, (68, 2)).astype(np.float32),
                np.array([20, 10, 5], np.float32), 0.9)
    scene = default_overlay(lambda: 99.0).annotate(image, [face])
    assert not image.any() and scene.any()
    assert scene[30:91, 40].any()  # the box's left edge


def test_missing_model_is_a_one_line_model_error(tmp_path):
    config = CPU.with_overrides({"models.atpn": str(tmp_path / "nope.onnx")})
    with ExitStack() as stack, pytest.raises(ModelError, match="nope.onnx: model file not found") as err:
        open_pipeline(config, stack)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("pose, axis, component, sign", [
    ((30, 0, 0), 2, 0, 1),  # yaw > 0: the nose turns toward the image's right
    ((0, 30, 0), 2, 1, -1),  # pitch > 0: the nose goes up (y down)
    ((0, 0, 30), 0, 1, 1),  # roll > 0: the eye line tilts down to the right, as its angle in the image
])
def test_pose_axes_follow_the_readme_convention(pose, axis, component, sign):
    from edge.pipeline.render import pose_axes

    frontal = pose_axes(np.zeros(3), 1.0)
    assert np.allclose(frontal[0], [1, 0]) and np.allclose(frontal[1], [0, 1]) and np.allclose(frontal[2], [0, 0])
    assert sign * pose_axes(np.array(pose, float), 1.0)[axis][component] == pytest.approx(0.5)


@pytest.mark.parametrize("mirror_average, crops_per_face", [(False, 1), (True, 2)])
def test_many_real_faces_go_to_atpn_in_one_batch_of_at_most_max_faces(astronaut_bgr, mirror_average, crops_per_face):
    model_path("atpn68.onnx")
    face = cv2.resize(astronaut_bgr[20:260, 110:340], (160, 180))
    mosaic = np.vstack([np.hstack([face] * 4)] * 2)  # 8 faces, 640x360
    config = CPU.with_overrides({"tracker.max_faces": 3, "runtime.mirror_average": mirror_average})
    with ExitStack() as stack:
        pipeline = open_pipeline(config, stack)
        assert len(pipeline.detector.detect(mosaic)) >= 4  # type: ignore[attr-defined]
        batches = []
        run_crops = pipeline.aligner.run_crops
        pipeline.aligner.run_crops = lambda crops, *rest: batches.append(len(crops)) or run_crops(crops, *rest)
        faces = pipeline.process(mosaic)
    assert batches[0] == 3 * crops_per_face and 1 <= len(faces) <= 3


def test_summary_fps_is_the_wall_rate_and_matches_the_json_lines(tmp_path, pipeline, demo_frames):
    """The JSON writing counts in `output` and `total` (issue 16: the summary's FPS was 7 % above the wall rate)."""
    frames = demo_frames * 4
    stats = RunStats()
    outputs = Sinks([JsonLinesSink(str(tmp_path / "o.jsonl"))])
    start = time.perf_counter()
    run_loop(MemorySource(frames), pipeline, outputs, stats)
    wall = time.perf_counter() - start
    outputs.close()
    summary = stats.summary()
    assert summary["fps"] == pytest.approx(len(frames) / wall, rel=0.01)
    lines = read_lines(tmp_path / "o.jsonl")
    assert summary["frames"] == len(lines) == len(frames)
    net = [line["ms"]["align_net"] for line in lines if "align_net" in line["ms"]]
    assert summary["stages_ms"]["align_net"]["n"] == len(net)
    assert summary["stages_ms"]["align_net"]["p50"] == pytest.approx(np.percentile(net, 50), rel=0.01, abs=0.002)
    assert summary["stages_ms"]["output"]["n"] == len(frames)  # the JSON line's own writing


class CtrlCInTheJsonLine(Sinks):
    """Ctrl-C lands while frame `at` is being written."""

    def __init__(self, json_path: str, at: int) -> None:
        super().__init__([JsonLinesSink(json_path)])
        self.at = at

    def record(self, result: FrameResult) -> None:
        if result.frame.index == self.at:
            raise KeyboardInterrupt
        super().record(result)


def test_after_ctrl_c_the_summary_counts_the_frames_the_json_holds(tmp_path, pipeline, demo_frames):
    stats = RunStats()
    outputs = CtrlCInTheJsonLine(str(tmp_path / "o.jsonl"), at=3)
    with pytest.raises(KeyboardInterrupt):
        run_loop(MemorySource(demo_frames), pipeline, outputs, stats)
    outputs.close()
    assert stats.frames == len(read_lines(tmp_path / "o.jsonl")) == 3


@pytest.fixture()
def undecodable_folder(tmp_path):
    for name in ("a.jpg", "b.png"):
        (tmp_path / name).write_bytes(b"\xff\xd8 not an image")
    return tmp_path


def test_an_input_without_one_decodable_frame_is_a_one_line_source_error(undecodable_folder, pipeline):
    message = f"{undecodable_folder}: no image could be read (2 failed to decode)"
    with pytest.raises(SourceError, match=re.escape(message)) as err:
        run_loop(FolderSource(str(undecodable_folder)), pipeline, Sinks(), RunStats())
    assert "\n" not in str(err.value)
    with pytest.raises(SourceError, match=re.escape(message)):
        decode_frames(str(undecodable_folder))


def test_benchmark_decoding_stops_at_its_memory_budget(hamilton_clip):
    lines = []
    images = decode_frames(str(hamilton_clip), budget_mb=20, log=lines.append)
    assert len(images) == 20 * 2 ** 20 // (640 * 360 * 3) == 30
    assert lines == ["benchmark: decoding stopped at the 20 MB memory budget: timing the first 30 of 275 frames"]
    assert len(decode_frames(str(hamilton_clip), max_frames=12, budget_mb=20, log=lines.append)) == 12
    assert len(lines) == 1


def test_benchmark_needs_at_least_one_run(demo_frames):
    with pytest.raises(ConfigError, match="benchmark runs must be at least 1, got 0"):
        benchmark(demo_frames, CPU, 0)


@pytest.mark.parametrize("spin, live, expected", [("auto", True, "0"), ("auto", False, "1"), ("on", True, "1"),
                                                  ("off", False, "0")])
def test_onnxruntime_threads_sleep_between_frames_of_a_live_source(spin, live, expected):
    """A camera paces the loop: spinning idle threads burnt 37 CPU ms per 30 FPS frame here, sleeping ones 5."""
    from edge.runtime.onnxrt import SPIN_KEY

    config = Config().with_overrides({"runtime.spin": spin})
    with ExitStack() as stack:
        pipeline = open_pipeline(config, stack, live_source=live)
        engines = [pipeline.aligner.engine] + [d.engine for d in pipeline.detector.detectors]  # type: ignore[attr-defined]
        assert [e._session.get_session_options().get_session_config_entry(SPIN_KEY)  # type: ignore[attr-defined]
                for e in engines] == [expected] * len(engines)
    with pytest.raises(ConfigError, match="runtime.spin must be one of auto, on, off"):
        Config().with_overrides({"runtime.spin": "sometimes"})
