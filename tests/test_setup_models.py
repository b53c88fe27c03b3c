"""`make models` on a copy of the real models folder: damaged files are found, removed and made again byte for byte."""
from __future__ import annotations

import json
import shutil

import pytest

from conftest import model_path
from edge.assets import FACE_FULL_TFLITE
from edge.fileio import file_sha256
from edge.setup_models import CHECKSUMS, STEPS, damage, main

FILES = [name for step in STEPS for name in step.files]


@pytest.fixture()
def models(tmp_path):
    """Every file `make models` makes, copied from models/ (newer than their sources, so all cached)."""
    for name in FILES:
        shutil.copy(model_path(name), tmp_path / name)
    return tmp_path


def make_models(folder, capsys) -> str:
    assert main(["--dir", str(folder)]) == 0
    return capsys.readouterr().out


def test_sound_files_are_cached_and_recorded(models, capsys):
    out = make_models(models, capsys)
    assert "damaged" not in out and out.count("(cached)") == 5  # three ATPN files, two detectors
    record = json.loads((models / CHECKSUMS).read_text())
    assert set(record) == set(FILES)
    for name in FILES:
        assert record[name] == {"bytes": (models / name).stat().st_size, "sha256": file_sha256(model_path(name))}
    stamps = {name: (models / name).stat().st_mtime_ns for name in FILES}
    assert "damaged" not in make_models(models, capsys)
    assert stamps == {name: (models / name).stat().st_mtime_ns for name in FILES}


def zero_the_middle(path) -> None:
    """A bad sector: 64 bytes in the weights zeroed, same size, still a well-formed ONNX."""
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size // 2)
        f.write(bytes(64))


@pytest.mark.parametrize("name, harm, reason", [
    ("blazeface_short.onnx", zero_the_middle, "its SHA-256 is not the one recorded"),
    ("blazeface_full.onnx", lambda path: path.write_bytes(b""), "empty"),
    ("atpn68.onnx", lambda path: path.write_bytes(path.read_bytes()[:400_000]), "400000 bytes where"),
])
def test_damaged_recorded_files_are_made_again(models, capsys, name, harm, reason):
    make_models(models, capsys)  # records every file
    harm(models / name)
    if harm is zero_the_middle:
        assert damage(models / name, None) is None  # a content check alone would keep it: the checksum finds it
    out = make_models(models, capsys)
    assert f"{name} is damaged ({reason}" in out and out.count("is damaged") == 1
    assert file_sha256(models / name) == file_sha256(model_path(name))  # made again, the very same bytes


def test_unrecorded_files_are_checked_by_content(models, capsys):
    """Files made before the record existed: ONNX must parse, wheel files must have their pinned SHA-256."""
    (models / "blazeface_full.onnx").write_bytes(model_path("blazeface_full.onnx").read_bytes()[:300_000])
    out = make_models(models, capsys)
    assert "blazeface_full.onnx is damaged (not a readable ONNX model" in out
    assert file_sha256(models / "blazeface_full.onnx") == file_sha256(model_path("blazeface_full.onnx"))
    tflite = models / FACE_FULL_TFLITE.filename
    assert damage(tflite, None) is None
    tflite.write_bytes(tflite.read_bytes()[:-1])
    assert damage(tflite, None) == "not the file pinned from mediapipe==0.10.21"
