"""Sinks by URI: the registry picks a sink by scheme or suffix, a missing package or an unknown target is one
line, and closing closes every sink even when one of them fails."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edge.config import Config
from edge.errors import ConfigError
from edge.io import sinks
from edge.io.sinks import FrameResult, SinkOptions, Sinks, open_sink, sink_key
from edge.types import Face, Frame, TrackState


@pytest.mark.parametrize("target, key", [
    ("out/a.mp4", ".mp4"), ("file://out/a.MP4", ".mp4"), ("a.jsonl", ".jsonl"), ("display://0", "display://"),
    ("mqtt://host/t", "mqtt://"), ("MQTTS://host:8883/t?qos=1", "mqtts://"),
])
def test_a_target_names_its_sink_by_scheme_or_suffix(target, key):
    assert sink_key(target) == key


@pytest.mark.parametrize("target, words", [("out.txt", "no sink for .txt"), ("out", "a path without a suffix"),
                                           ("udp://10.0.0.2:5000", "no sink for udp://")])
def test_an_unknown_target_is_one_line_listing_the_known_ones(target, words):
    with pytest.raises(ConfigError) as err:
        sink_key(target)
    assert words in str(err.value) and "mqtt://" in str(err.value) and "\n" not in str(err.value)


def test_file_uri_and_alias_open_the_right_sink(tmp_path):
    result = FrameResult(Frame(np.zeros((8, 8, 3), np.uint8), 0, 0.0, name="a.png"),
                         [Face(1, TrackState.DETECTED, np.zeros(4), np.zeros((68, 2)), np.zeros(3), 0.9)], {"total": 1.0},
                         stills=True)
    by_uri = open_sink(f"file://{tmp_path / 'a.jsonl'}")
    alias = open_sink(str(tmp_path / "b.txt"), SinkOptions(flag="--json"), key=".jsonl")  # --json takes any name
    for sink in (by_uri, alias):
        assert sink.write(result, None) and not sink.wants_picture
        sink.close()
    line = json.loads((tmp_path / "a.jsonl").read_text())
    assert line == json.loads((tmp_path / "b.txt").read_text())
    assert (line["mode"], line["file"], len(line["faces"])) == ("stills", "a.png", 1)


def test_a_sink_whose_package_is_missing_is_one_line(monkeypatch):
    monkeypatch.setitem(sinks.SINKS, "kafka://", "edge.io.sinks.kafka_that_is_not_there:KafkaSink")
    with pytest.raises(ConfigError, match=r"--output kafka://h/t: needs the Python package '[\w.]+'; pip install"):
        open_sink("kafka://h/t")


def test_the_config_turns_flags_into_targets_with_their_flag():
    config = Config().with_overrides({"output.save": "v.mp4", "output.json": "r.log", "output.display": "off",
                                      "output.targets": ["m.jsonl", "mqtt://h/t"]})
    assert config.output.sink_targets() == [("v.mp4", ".mp4", "--save"), ("r.log", ".jsonl", "--json"),
                                            ("m.jsonl", None, "--output"), ("mqtt://h/t", None, "--output")]
    with pytest.raises(ConfigError, match="output.targets must be a list of strings"):
        Config().with_overrides({"output.targets": ["a.mp4", 3]})


class Failing:
    wants_picture, uri = False, "fail"

    def write(self, result, picture):
        return True

    def close(self):
        raise OSError("disk gone")


class Counting(Failing):
    closed = 0

    def close(self):
        Counting.closed += 1


def test_closing_closes_every_sink_and_then_raises_the_first_failure():
    group = Sinks([Counting(), Failing(), Counting()])
    with pytest.raises(OSError, match="disk gone"):
        group.close()
    assert Counting.closed == 2
