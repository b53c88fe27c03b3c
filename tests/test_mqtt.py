"""The MQTT sink against a real Mosquitto broker (tests/mqtt_broker.py): through the CLI, with the broker
lost and back mid-run, unreachable from the start, and with bad URIs."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List

import numpy as np
import paho.mqtt.client as mqtt
import pytest

from conftest import ROOT, model_path
from edge.errors import ConfigError
from edge.io.sinks import FrameResult, SinkOptions, open_sink
from edge.io.sinks.mqtt import MqttSink
from edge.types import Face, Frame, TrackState
from mqtt_broker import MOSQUITTO, MosquittoBroker, free_port

TOPIC = "atpn/test"


@pytest.fixture()
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    if not os.access(MOSQUITTO, os.X_OK):
        pytest.skip("mosquitto is not installed: apt-get install mosquitto (.ci/run does)")
    running = MosquittoBroker(tmp_path)
    yield running
    running.stop()


class Subscriber:
    """A paho client on TOPIC (qos 1) that keeps every message, parsed, in arrival order. `persistent`: its
    session and what is queued for it outlive a broker restart and its own reconnect."""

    def __init__(self, port: int, persistent: bool = False) -> None:
        self.messages: List[Dict] = []
        subscribed = threading.Event()
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"atpn-test-{os.getpid()}", clean_session=not persistent)
        self.client.on_connect = lambda client, userdata, flags, reason, properties: client.subscribe(TOPIC, qos=1)
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.on_message = lambda client, userdata, message: self.messages.append(json.loads(message.payload))
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(5), "the test subscriber did not get its subscription confirmed"

    def wait_for(self, done: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            time.sleep(0.02)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


FACE = Face(track_id=1, state=TrackState.TRACKED, box_xyxy=np.array([1.0, 2.0, 3.0, 4.0]),
            landmarks_px=np.zeros((68, 2)), pose_ypr_deg=np.zeros(3), score=0.9)


def result(index: int, faces: bool = True) -> FrameResult:
    return FrameResult(frame=Frame(np.zeros((4, 4, 3), np.uint8), index, index * 33.3), faces=[FACE] if faces else [],
                       stage_ms={"total": 1.0})


def test_a_demo_run_publishes_the_json_lines_of_frames_with_faces(broker, tmp_path):
    """The CLI's loop writes the same FrameResult to both sinks: the messages are the JSON lines, in order."""
    model_path("atpn68.onnx")
    model_path("blazeface_short.onnx")
    subscriber = Subscriber(broker.port)
    jsonl = tmp_path / "o.jsonl"
    run = subprocess.run([sys.executable, "run_camera.py", "-i", "demo", "--max-frames", "40", "--display", "off",
                          "--output", f"mqtt://127.0.0.1:{broker.port}/{TOPIC}?qos=1", "--json", str(jsonl)],
                         cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    with_faces = [line for line in lines if line["faces"]]
    assert len(lines) == 40 and with_faces, "the demo should show a face"
    subscriber.wait_for(lambda: len(subscriber.messages) >= len(with_faces))
    subscriber.close()
    assert subscriber.messages == with_faces
    uri = f"mqtt://127.0.0.1:{broker.port}/{TOPIC}"
    assert f"{uri}: connected" in run.stderr
    assert f"{uri}: {len(with_faces)} messages sent, {len(with_faces)} delivered, 0 dropped" in run.stderr


@pytest.mark.parametrize("buffer", [1000, 5])
def test_a_broker_lost_and_back_never_slows_the_loop_nor_loses_a_message_unseen(broker, buffer):
    """30 writes a second, the broker stopped for 2 s and started again: each write stays quick, and every
    message with faces reaches the subscriber or is counted as dropped (all reach it with a big buffer;
    a buffer of 5 drops and says so). Frames without faces send nothing."""
    subscriber = Subscriber(broker.port, persistent=True)
    log: List[str] = []
    sink = MqttSink(f"mqtt://127.0.0.1:{broker.port}/{TOPIC}?qos=1&buffer={buffer}", SinkOptions(log=log.append))
    waits: List[float] = []
    index = 0

    def write_for(seconds: float, until: Callable[[], bool] = lambda: False) -> None:
        nonlocal index
        end = time.monotonic() + seconds
        while time.monotonic() < end and not until():
            start = time.perf_counter()
            sink.write(result(index, faces=index % 5 != 4), None)
            waits.append(time.perf_counter() - start)
            index += 1
            time.sleep(max(0.0, 1 / 30 - (time.perf_counter() - start)))

    write_for(1.0)
    broker.stop()
    write_for(2.0)
    broker.start()
    write_for(10.0, until=lambda: any("reconnected" in line for line in log))
    write_for(0.5)
    sink.close()
    subscriber.wait_for(lambda: len({m["index"] for m in subscriber.messages}) + sink.dropped >= sink.messages)
    subscriber.close()
    received = {m["index"] for m in subscriber.messages}

    assert max(waits) < 0.05 and sorted(waits)[len(waits) // 2] < 0.002, f"writes took up to {max(waits):.3f} s"
    assert sink.messages == sum(1 for i in range(index) if i % 5 != 4) and not any(i % 5 == 4 for i in received)
    assert len(received) + sink.dropped >= sink.messages, (len(received), sink.dropped, sink.messages)
    assert sink.sent + sink.dropped == sink.messages and sink.buffered == 0
    uri = f"mqtt://127.0.0.1:{broker.port}/{TOPIC}"
    assert any(line.startswith(f"{uri}: broker lost (") and f"buffering up to {buffer} messages" in line
               for line in log), log
    back = [line for line in log if line.startswith(f"{uri}: reconnected after ")]
    assert len(back) == 1, log
    if buffer == 1000:
        assert sink.dropped == 0 and len(received) == sink.messages and "; 0 messages dropped meanwhile" in back[0]
    else:  # a loaded machine may drop a few more after the reconnect, while the buffer of 5 drains
        meanwhile = int(re.search(r"; (\d+) messages dropped meanwhile$", back[0]).group(1))
        assert 0 < meanwhile <= sink.dropped, (back[0], sink.dropped)
        assert any(line.startswith(f"{uri}: buffer full (5 messages)") for line in log), log
    assert log[-1] == f"{uri}: {sink.sent} messages sent, {sink.delivered} delivered, {sink.dropped} dropped"


def test_a_broker_away_from_the_start_is_no_error_and_close_is_quick():
    """Fleet boxes start before the network: the sink opens, buffers, says so once, and closes in time."""
    port = free_port()
    log: List[str] = []
    sink = MqttSink(f"mqtt://127.0.0.1:{port}/{TOPIC}?qos=1&buffer=10", SinkOptions(log=log.append))
    waits = []
    for i in range(30):
        start = time.perf_counter()
        assert sink.write(result(i), None) is True
        waits.append(time.perf_counter() - start)
        time.sleep(0.01)
    start = time.monotonic()
    sink.close()
    sink.close()
    assert time.monotonic() - start < 3.0 and max(waits) < 0.05
    assert (sink.sent, sink.dropped, sink.buffered) == (0, 30, 0)
    uri = f"mqtt://127.0.0.1:{port}/{TOPIC}"
    assert len(log) == 3 and log[0].startswith(f"{uri}: cannot reach the broker (") and "refused" in log[0]
    assert log[0].endswith("); buffering up to 10 messages, retrying every 1-30 s")
    assert log[1:] == [f"{uri}: buffer full (10 messages); dropping the oldest until the broker takes them",
                   f"{uri}: 0 messages sent, 0 delivered, 30 dropped"]


def test_a_uri_with_every_option_names_the_broker_without_its_password():
    sink = open_sink("mqtts://user:s3cret@127.0.0.1/a/b/c?qos=1&client_id=box7&keepalive=30&buffer=7&insecure=1")
    try:
        assert isinstance(sink, MqttSink) and sink.uri == "mqtts://127.0.0.1:8883/a/b/c" and sink.topic == "a/b/c"
        assert sink.qos == 1 and sink.wants_picture is False
    finally:
        sink.close()


@pytest.mark.parametrize("target, problem", [
    ("mqtt://127.0.0.1:1883", "no topic"),
    ("mqtt://127.0.0.1:1883/", "no topic"),
    ("mqtt:///atpn/faces", "no broker host"),
    ("mqtt://user:s3cret@127.0.0.1/t?qos=2", "qos=2 is not 0 or 1"),
    ("mqtt://127.0.0.1/t?colour=red", "unknown option colour="),
    ("mqtt://127.0.0.1/t?buffer=0", "buffer=0 is not a number"),
    ("mqtt://127.0.0.1/t?keepalive=x", "keepalive=x is not seconds"),
    ("mqtt://127.0.0.1:99999/t", "the port is not a number"),
    ("mqtt://127.0.0.1:0/t", "the port is not a number"),
    ("mqtt://[::1/t", "not a valid URI"),
    ("mqtt://u:s3cret#w@127.0.0.1/t", "percent-encode a # in a password"),
    ("mqtt://127.0.0.1/atpn/#", "cannot hold + or #"),
    ("mqtt://127.0.0.1/t?insecure=1", "insecure= is for mqtts://"),
    ("mqtts://u:s3cret@127.0.0.1/t?ca=/no/such.pem", "ca=/no/such.pem is not a file"),
])
def test_a_bad_uri_is_a_one_line_config_error_with_the_password_hidden(target, problem):
    with pytest.raises(ConfigError) as caught:
        MqttSink(target, SinkOptions(flag="--output"))
    message = str(caught.value)
    assert message.startswith("--output ") and problem in message and "\n" not in message, message
    assert "s3cret" not in message and ("***@" in message) == ("s3cret" in target), message


def test_a_bad_uri_stops_the_cli_before_any_work_with_one_line():
    run = subprocess.run([sys.executable, "run_camera.py", "-i", "demo", "--display", "off", "-q",
                          "--output", "mqtt://me:s3cret@127.0.0.1/atpn?qos=5"], cwd=str(ROOT),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith("error: --output mqtt://me:***@127.0.0.1/atpn?qos=5: qos=5 is not 0 or 1")
