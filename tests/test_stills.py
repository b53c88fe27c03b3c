"""A folder of photos runs as independent stills, and `edge.eval landmarks` measures exactly that path.

The photos: the astronaut moved, scaled and turned (labels moved with it), so a tracker carrying one
photo's face into the next would look in the wrong place; a sequence run must differ, a stills run must not.
"""
from __future__ import annotations

import csv
import json
import math

import cv2
import numpy as np
import pytest

from conftest import model_path
from edge.eval import metrics
from edge.eval.datasets import write_pts
from test_eval import ASTRONAUT_EYES, schematic_face

# (centre x, centre y, scale, degrees) of the astronaut's face on a 640x480 canvas: near each other, as a folder
# of face crops has them, so a track carried over from the photo before still sees a face
PLACEMENTS = [(320, 240, 1.0, 0), (345, 255, 0.8, 18), (300, 228, 1.2, -16), (330, 262, 0.9, 8)]


@pytest.fixture(scope="module")
def photos(tmp_path_factory, astronaut_bgr):
    model_path("atpn68.onnx"), model_path("blazeface_full.onnx"), model_path("blazeface_short.onnx")
    folder = tmp_path_factory.mktemp("photos")
    labels = schematic_face(*ASTRONAUT_EYES)
    centre = labels.mean(0)
    for k, (x, y, scale, degrees) in enumerate(PLACEMENTS):
        matrix = cv2.getRotationMatrix2D(tuple(float(c) for c in centre), degrees, scale)
        matrix[:, 2] += (x, y) - centre
        image = cv2.warpAffine(astronaut_bgr, matrix, (640, 480), borderValue=(60, 60, 60))
        cv2.imwrite(str(folder / f"photo{k}.png"), image)
        write_pts(str(folder / f"photo{k}.pts"), labels @ matrix[:, :2].T + matrix[:, 2])
    return folder


def run_camera(folder, out, *flags):
    from run_camera import main

    assert main(["-i", str(folder), "--json", str(out), "--display", "off", "-q", *flags]) == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


def nme_of(line, folder):
    from edge.eval.datasets import read_pts

    truth = read_pts(str(folder / line["file"].replace(".png", ".pts")))
    (face,) = line["faces"]
    return float(metrics.nme(np.array(face["landmarks"]), truth))


def test_a_folder_of_photos_runs_as_stills_and_says_so(photos, tmp_path):
    lines = run_camera(photos, tmp_path / "o.jsonl")
    assert [line["file"] for line in lines] == [f"photo{k}.png" for k in range(len(PLACEMENTS))]
    assert all(line["mode"] == "stills" and len(line["faces"]) == 1 for line in lines)
    assert all(nme_of(line, photos) < 0.1 for line in lines)  # the labels are schematic: ~8 % NME when right


def test_the_eval_tool_measures_what_run_camera_reports(photos, tmp_path):
    """Same photos, default config: the landmarks in run_camera's JSON give the eval tool's NME, face by face."""
    from edge.eval.__main__ import main as evaluate

    lines = run_camera(photos, tmp_path / "o.jsonl")
    assert evaluate(["landmarks", "--images", str(photos), "--out", str(tmp_path / "eval")]) == 0
    rows = {row["image"]: float(row["nme"]) for row in csv.DictReader(open(tmp_path / "eval" / "landmarks.csv"))}
    summary = json.loads((tmp_path / "eval" / "landmarks.json").read_text())
    assert summary["model"].endswith("atpn68_stills.onnx") and summary["passes"] == 2  # photos' model and passes
    assert len(rows) == len(lines)
    for line in lines:  # the JSON rounds to 0.01 px: an NME of faces ~100 px apart moves by < 1e-4
        assert nme_of(line, photos) == pytest.approx(rows[line["file"]], abs=2e-4), line["file"]


def test_sequence_mode_tracks_across_photos_and_is_worse(photos, tmp_path):
    """--stills off is the old behaviour (a folder of video frames): the next photo's crop comes from the last."""
    same_model = tmp_path / "same_model.yaml"  # one model, one pass: the first photo must then come out the same
    same_model.write_text("models:\n  atpn_stills: ''\nstills:\n  passes: 1\n")
    stills = run_camera(photos, tmp_path / "s.jsonl", "-c", str(same_model))
    sequence = run_camera(photos, tmp_path / "q.jsonl", "-c", str(same_model), "--stills", "off", "--detect-every", "0")
    assert all(line["mode"] == "sequence" for line in sequence)
    assert sequence[0]["faces"][0]["landmarks"] == stills[0]["faces"][0]["landmarks"]  # the first photo: same path
    worse = [nme_of(q, photos) - nme_of(s, photos) if q["faces"] else math.inf for q, s in zip(sequence[1:], stills[1:])]
    assert max(worse) > 0.01


def test_one_image_file_is_a_still_too(photos, tmp_path):
    (line,) = run_camera(photos / "photo1.png", tmp_path / "o.jsonl")
    assert line["mode"] == "stills" and line["file"] == "photo1.png" and len(line["faces"]) == 1

