"""`python -m edge.eval.splits`: a stable cut into select/report halves, and wild copies whose labels follow the face."""
from __future__ import annotations

import cv2
import numpy as np

from edge.eval.datasets import read_pts, write_pts
from edge.eval.splits import HALVES, half_of, main
from test_eval import ASTRONAUT_EYES, schematic_face


def test_the_halves_are_a_stable_hash_cut():
    names = [f"face{k}.jpg" for k in range(400)]
    halves = [half_of(name) for name in names]
    assert set(halves) == set(HALVES) and 150 < halves.count("select") < 250
    assert half_of("100032540_1.jpg") == half_of("100032540_1.jpg")  # no salt: the same on every run and machine


def test_splits_write_both_halves_and_wild_copies_whose_labels_follow_the_face(tmp_path, astronaut_bgr):
    src = tmp_path / "faces"
    src.mkdir()
    labels = schematic_face(*ASTRONAUT_EYES)
    for k in range(12):
        cv2.imwrite(str(src / f"face{k}.png"), astronaut_bgr)
        write_pts(str(src / f"face{k}.pts"), labels)
    out = tmp_path / "splits"
    assert main(["--images", str(src), "--out", str(out)]) == 0
    plain = {h: sorted(p.name for p in (out / h).glob("*.pts")) for h in HALVES}
    assert sorted(plain["select"] + plain["report"]) == sorted(f"face{k}.pts" for k in range(12))
    for half in HALVES:
        assert sorted(p.name for p in (out / f"{half}_wild").glob("*.pts")) == plain[half]
    moved = 0
    for pts in (out / "select_wild").glob("*.pts"):
        wild, image = read_pts(str(pts)), cv2.imread(str(pts.with_suffix(".png")))
        fit, _ = cv2.estimateAffinePartial2D(labels.astype(np.float32), wild.astype(np.float32))
        np.testing.assert_allclose(labels @ fit[:, :2].T + fit[:, 2], wild, atol=0.01)  # a similarity of the labels
        side = np.ptp(wild, axis=0).max() / min(image.shape[:2])
        assert 0.4 < side < 0.85 and (wild >= 0).all() and (wild < image.shape[1::-1]).all()
        moved += not np.allclose(wild, labels, atol=1.0)
    assert moved == len(plain["select"])
    again = tmp_path / "again"
    assert main(["--images", str(src), "--out", str(again)]) == 0
    assert all((again / "select_wild" / name).read_text() == (out / "select_wild" / name).read_text()
               for name in plain["select"])  # seeded: the same copies every time


def test_a_folder_without_labels_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["--images", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
