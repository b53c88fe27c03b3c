"""run_camera.py as a user runs it: exit codes, one-line errors, the summary, Ctrl-C."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import ROOT, model_path

CLI = [sys.executable, str(ROOT / "run_camera.py")]


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=timeout)


@pytest.fixture()
def clip(tmp_path) -> Path:
    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (160, 120))
    for i in range(6):
        writer.write(np.full((120, 160, 3), 20 * i, np.uint8))
    writer.release()
    return path


@pytest.mark.parametrize("args, message", [
    (["--input", "/dev/video99"], "camera /dev/video99 not found"),
    (["--input", "gopher://x"], "unknown input URI scheme"),
    (["--config", "no/such.yaml"], "cannot read config"),
    (["--detect-every", "-3"], "tracker.detect_every"),
])
def test_user_errors_exit_2_with_one_line(args, message):
    result = run_cli(*args, "--display", "off")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and message in result.stderr


def test_missing_model_exits_2_with_one_line(tmp_path, clip):
    config = tmp_path / "c.yaml"
    config.write_text(f"models:\n  atpn: {tmp_path / 'gone.onnx'}\n")
    result = run_cli("--config", str(config), "--input", str(clip), "--display", "off", "--quiet")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'gone.onnx'}: model file not found; "
                                                  "run `make models` (or pass the right path)"]


def test_video_file_run_prints_the_summary_and_writes_outputs(tmp_path, clip):
    model_path("atpn68.onnx")
    model_path("blazeface_full.onnx")
    out = tmp_path / "out"
    result = run_cli("--input", str(clip), "--display", "off", "--json", str(out / "r.jsonl"),
                     "--save", str(out / "r.mp4"), "--threads", "1")
    assert result.returncode == 0, result.stderr
    assert "frames 6" in result.stderr and "p99 ms" in result.stderr
    assert "detector ran on 100.0 %" in result.stderr  # no face in 6 frames: 5 grace frames, then the 3rd after
    assert len((out / "r.jsonl").read_text().splitlines()) == 6 and (out / "r.mp4").stat().st_size > 0


def test_ctrl_c_prints_the_summary_and_exits_130(tmp_path, astronaut_bgr):
    model_path("atpn68.onnx")
    jsonl = tmp_path / "r.jsonl"
    # A shell that starts this suite in the background passes SIGINT down as ignored; a user's Ctrl-C never is.
    proc = subprocess.Popen([*CLI, "--input", "demo", "--display", "off", "--json", str(jsonl), "--threads", "1"],
                            cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not jsonl.exists() or len(jsonl.read_text().splitlines()) < 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "p50 ms" in stderr
    lines = jsonl.read_text().splitlines()
    assert len(lines) >= 3 and all(json.loads(line)["index"] == i for i, line in enumerate(lines))


def test_benchmark_times_decoded_frames_and_writes_a_report(tmp_path):
    model_path("atpn68.onnx")
    report = tmp_path / "bench.json"
    out = run_cli("--input", "demo", "--max-frames", "12", "--benchmark", "2", "--json", str(report), timeout=120)
    assert out.returncode == 0, out.stderr
    assert "FPS end-to-end after decode" in out.stdout and "align_net" in out.stdout
    data = json.loads(report.read_text())
    assert data["frames"] == 12 and len(data["fps_runs"]) == 2 and data["median_run"]["frames"] == 12


def test_a_quiet_demo_run_prints_nothing_at_all():
    """Not even libpng's warning about the demo photo's colour profile (its iCCP chunk is left out)."""
    model_path("atpn68.onnx")
    result = run_cli("--input", "demo", "--display", "off", "--max-frames", "3", "--quiet")
    assert result.returncode == 0 and result.stderr == "" and result.stdout == ""
