"""How run_camera.py ends when something goes wrong on a device that runs for weeks (issue 16).

Each case runs the CLI as a subprocess on real frames and models: a stop signal (systemd, docker stop,
a closed terminal, Ctrl-C during start-up) closes everything and prints the summary; a disk that fills
or a file size limit ends in one line, exit 2, with the JSON whole and the video playable; every
user-fixable mistake is one line and exit 2. None may print a traceback.
"""
from __future__ import annotations

import json
import resource
import signal
import subprocess
import time
from pathlib import Path
from typing import List

import cv2
import numpy as np
import pytest

from conftest import ROOT, model_path
from edge.detectors.blazeface import METADATA_KEY as DETECTOR_METADATA
from test_run_camera import CLI, run_cli

STOPS = {"SIGINT": 130, "SIGTERM": 143, "SIGHUP": 129}


def default_signals() -> None:
    """What a service or a terminal gives the process (a shell that starts this suite in the background
    passes SIGINT down as ignored)."""
    for name in STOPS:
        signal.signal(getattr(signal, name), signal.SIG_DFL)


def video_frames(path: Path) -> List[np.ndarray]:
    """Every frame a player gets from `path` (none when the file does not play)."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    cap.release()
    return frames


def json_lines(path: Path) -> List[dict]:
    """The JSON lines file, checked whole: every line parses, the indices count up from 0."""
    text = path.read_text()
    assert not text or text.endswith("\n"), "the last line is cut"
    records = [json.loads(line) for line in text.splitlines()]
    assert [r["index"] for r in records] == list(range(len(records)))
    return records


def assert_one_error_line(result: subprocess.CompletedProcess, *parts: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for part in parts:
        assert part in lines[0]


@pytest.fixture(scope="module")
def demo_clip(tmp_path_factory) -> Path:
    """120 frames of the built-in demo (the astronaut photo moving, 640x360) as an .mp4: a real video that
    every machine has after `make models`, without the demo's libpng warning on the CLI's stderr."""
    model_path("atpn68.onnx")
    from edge.io.demo import DemoSource

    path = tmp_path_factory.mktemp("clip") / "demo.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (640, 360))
    for frame in DemoSource():
        if frame.index == 120:
            break
        writer.write(frame.image)
    writer.release()
    return path


@pytest.fixture()
def small_disk(tmp_path) -> Path:
    """A 1 MiB tmpfs: a real disk that fills. Mounting needs root or CAP_SYS_ADMIN (CI runs as root);
    elsewhere these tests skip and the `ulimit -f` test still covers the video."""
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    except OSError as exc:
        pytest.skip(f"no mount command ({exc})")
    if mounted.returncode:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stdout.strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


# ---------------------------------------------------------------- stop signals


@pytest.mark.parametrize("name", list(STOPS))
def test_a_stop_signal_mid_run_closes_the_outputs_and_prints_the_summary(tmp_path, name):
    model_path("atpn68.onnx")
    jsonl, video = tmp_path / "r.jsonl", tmp_path / "r.mp4"
    proc = subprocess.Popen([*CLI, "--input", "demo", "--display", "off", "--json", str(jsonl), "--save", str(video),
                             "--threads", "1"], cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, preexec_fn=default_signals)
    wait_for_lines(jsonl, 3, proc)
    proc.send_signal(getattr(signal, name))
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == STOPS[name], stderr
    assert "Traceback" not in stderr and "p50 ms" in stderr
    lines = json_lines(jsonl)
    assert len(lines) >= 3
    assert len(lines) <= len(video_frames(video)) <= len(lines) + 1  # the video gets a frame just before its line


def test_a_signal_ignored_at_start_stays_ignored(tmp_path):
    """`nohup` ignores SIGHUP: a closed terminal must not stop the loop then."""
    model_path("atpn68.onnx")
    jsonl = tmp_path / "r.jsonl"

    def like_nohup() -> None:
        default_signals()
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    proc = subprocess.Popen([*CLI, "--input", "demo", "--display", "off", "--json", str(jsonl), "--threads", "1"],
                            cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                            preexec_fn=like_nohup)
    seen = wait_for_lines(jsonl, 3, proc)
    proc.send_signal(signal.SIGHUP)
    wait_for_lines(jsonl, seen + 10, proc)  # still running
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == STOPS["SIGTERM"] and "Traceback" not in stderr, stderr


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
def test_a_stop_during_start_up_is_a_clean_stop(tmp_path, demo_clip, name):
    """Sent as the engines start loading (ONNX Runtime's import, where pybind11 turns Ctrl-C into an
    ImportError that once read 'onnxruntime is not installed')."""
    proc = subprocess.Popen([*CLI, "--input", str(demo_clip), "--display", "off", "--json", str(tmp_path / "r.jsonl")],
                            cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                            preexec_fn=default_signals)
    first = proc.stderr.readline()  # "input: ...", printed just before the engines load
    proc.send_signal(getattr(signal, name))
    _, rest = proc.communicate(timeout=30)
    stderr = first + rest
    assert first.startswith("input: "), stderr
    assert proc.returncode == STOPS[name], stderr
    assert "Traceback" not in stderr and "error:" not in stderr and "frames " in stderr


def wait_for_lines(path: Path, count: int, proc: subprocess.Popen, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = len(path.read_text().splitlines()) if path.exists() else 0
        if lines >= count:
            return lines
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.02)
    raise AssertionError(f"{path} did not reach {count} lines in {timeout} s")


# ---------------------------------------------------------------- a disk that fills


def test_json_on_a_full_device_is_one_line(demo_clip):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    result = run_cli("--input", str(demo_clip), "--display", "off", "--quiet", "--json", "/dev/full")
    assert_one_error_line(result, "--json /dev/full: cannot write line 1 (No space left on device)")


def test_json_on_a_disk_that_fills_keeps_whole_lines(small_disk, demo_clip):
    filler = small_disk / "filler"
    filler.write_bytes(bytes(1024 * 1024 - 48 * 1024))  # 48 KiB left: ~25 lines
    result = run_cli("--input", str(demo_clip), "--display", "off", "--quiet", "--json", str(small_disk / "r.jsonl"))
    assert_one_error_line(result, "(No space left on device)", "before it are whole")
    assert len(json_lines(small_disk / "r.jsonl")) > 5


@pytest.mark.parametrize("json_there", [False, True], ids=["video", "video-and-json"])
def test_a_video_on_a_disk_that_fills_closes_playable(tmp_path, small_disk, demo_clip, json_there):
    jsonl = (small_disk if json_there else tmp_path) / "r.jsonl"
    result = run_cli("--input", str(demo_clip), "--display", "off", "--quiet", "--save", str(small_disk / "r.mp4"),
                     "--json", str(jsonl))
    assert_one_error_line(result, "--save", "the disk is nearly full", "and plays")
    frames, lines = video_frames(small_disk / "r.mp4"), json_lines(jsonl)
    assert 5 < len(frames) == len(lines) < 120  # every frame up to the last one there was room for


def test_a_video_at_the_file_size_limit_closes_playable(tmp_path, demo_clip):
    """`ulimit -f` (and FAT32's size limit) make writes fail just as a full disk does; no root needed."""
    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    video = tmp_path / "r.mp4"
    result = subprocess.run([*CLI, "--input", str(demo_clip), "--display", "off", "--quiet", "--save", str(video),
                             "--json", str(tmp_path / "r.jsonl")], cwd=str(ROOT), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, timeout=60, preexec_fn=limit_files)
    assert_one_error_line(result, "--save", "size limit", "and plays")
    assert 5 < len(video_frames(video)) == len(json_lines(tmp_path / "r.jsonl")) < 120


# ---------------------------------------------------------------- user-fixable mistakes: one line, exit 2


def bad_spec_model(tmp_path: Path, spec: str, name: str = "atpn68.onnx", key: str = "atpn_spec") -> Path:
    """A model of `make models` with its `key` metadata replaced."""
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(model_path(name)))
    next(p for p in model.metadata_props if p.key == key).value = spec
    path = tmp_path / f"bad_{name}"
    onnx.save(model, str(path))
    return path


def with_atpn(tmp_path: Path, model: Path, role: str = "atpn") -> List[str]:
    config = tmp_path / "c.yaml"
    config.write_text(f"models:\n  {role}: {model}\n")
    return ["--config", str(config)]


def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "file.txt"
    path.write_text("not a folder")
    return path


def too_many_threads() -> str:
    from edge.config import cores

    return str(cores() + 1)


MISTAKES = {  # what the user typed (given a scratch folder) -> what the one line must say
    "save-under-a-file": (lambda t: ["--save", str(a_file(t) / "out.mp4")], "is a file, not a folder"),
    "json-under-a-file": (lambda t: ["--json", str(a_file(t) / "out.jsonl")], "is a file, not a folder"),
    "save-is-a-folder": (lambda t: ["--save", str(t)], "is a folder"),
    "benchmark-report-under-a-file": (lambda t: ["--benchmark", "1", "--json", str(a_file(t) / "b.json")],
                                      "is a file, not a folder"),
    "benchmark-negative": (lambda t: ["--benchmark", "-3"], "--benchmark RUNS must be >= 1, got -3"),
    "benchmark-zero": (lambda t: ["--benchmark", "0"], "--benchmark RUNS must be >= 1, got 0"),
    "threads-1000": (lambda t: ["--threads", "1000"], "runtime.threads must be 0 to"),
    "threads-above-cores": (lambda t: ["--threads", too_many_threads()], "this machine's cores"),
    "spec-not-json": (lambda t: with_atpn(t, bad_spec_model(t, "{input_size: 112")),
                      "bad 'atpn_spec' metadata (not JSON"),
    "spec-unknown-key": (lambda t: with_atpn(t, bad_spec_model(t, '{"input_size": 112, "colour": "red"}')),
                         "unknown key 'colour'"),
    "spec-wrong-type": (lambda t: with_atpn(t, bad_spec_model(t, '{"input_size": "112"}')), "input_size must be int"),
    "detector-metadata-not-json": (lambda t: with_atpn(t, bad_spec_model(t, "[1, 2", "blazeface_short.onnx",
                                                                          DETECTOR_METADATA), "detector"),
                                   "metadata is not the JSON object the converter writes"),
}


@pytest.mark.parametrize("name", list(MISTAKES))
def test_user_fixable_mistakes_are_one_line_and_exit_2(tmp_path, demo_clip, name):
    args, message = MISTAKES[name]
    result = run_cli("--input", str(demo_clip), "--display", "off", "--quiet", "--max-frames", "3", *args(tmp_path))
    assert_one_error_line(result, message)
    assert "benchmark:" not in result.stdout  # refused before any work, not after it


# ---------------------------------------------------------------- the video takes every frame


def test_frames_of_another_size_are_letterboxed_into_the_video(tmp_path, demo_clip):
    """A folder of mixed sizes (and a 1x1 image, which the codec cannot take on its own): every frame is in
    the video, at the first one's size, the others fitted inside it on black."""
    demo = video_frames(demo_clip)
    folder = tmp_path / "mixed"
    folder.mkdir()
    sizes = [(640, 360), (320, 240), (201, 301), (1, 1), (640, 360)]
    for i, (w, h) in enumerate(sizes):
        cv2.imwrite(str(folder / f"{i}.png"), cv2.resize(demo[10 * i], (w, h), interpolation=cv2.INTER_AREA))
    video = tmp_path / "mixed.mp4"
    result = run_cli("--input", str(folder), "--display", "off", "--quiet", "--save", str(video),
                     "--json", str(tmp_path / "r.jsonl"))
    assert result.returncode == 0 and not result.stderr, result.stderr
    frames = video_frames(video)
    assert len(frames) == len(sizes) == len(json_lines(tmp_path / "r.jsonl"))
    assert all(f.shape == (360, 640, 3) for f in frames)
    # 320x240 -> 480x360 between black bars 80 px wide; 201x301 -> 240x360 between bars 200 px wide
    for frame, bar in ((frames[1], 80), (frames[2], 200)):
        assert frame[:, : bar - 4].max() < 40 and frame[:, -(bar - 4):].max() < 40
        assert frame[:, bar + 4: -(bar + 4)].mean() > 60
    assert frames[0][:, :76].mean() > 60  # the first frame fills the video


def test_a_1x1_first_frame_still_saves(tmp_path):
    folder = tmp_path / "tiny"
    folder.mkdir()
    cv2.imwrite(str(folder / "0.png"), np.full((1, 1, 3), 200, np.uint8))
    model_path("atpn68.onnx")
    result = run_cli("--input", str(folder), "--display", "off", "--quiet", "--save", str(tmp_path / "t.mp4"))
    assert result.returncode == 0 and not result.stderr, result.stderr
    (frame,) = video_frames(tmp_path / "t.mp4")
    assert abs(float(frame.mean()) - 200) < 10


# ---------------------------------------------------------------- calibration sees the faces the loop sees


def test_calibration_uses_the_loops_detector_cascade(tmp_path, hamilton_clip):
    """The short-range detector alone misses the distant faces that the full-range one finds for the loop."""
    from edge.pipeline.calibration import make_calibration_set

    atpn, short, full = (str(model_path(n)) for n in ("atpn68.onnx", "blazeface_short.onnx", "blazeface_full.onnx"))
    alone, cascade = (make_calibration_set(str(hamilton_clip), str(tmp_path / name), atpn, short, max_crops=10 ** 4,
                                           every=5, detector_far=far) for name, far in (("short", ""), ("both", full)))
    assert alone.frames == cascade.frames == 55  # of 275; the loop finds a face on 270
    assert cascade.frames_without_face <= 0.05 * 55 < alone.frames_without_face
