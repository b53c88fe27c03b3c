"""Dataset readers on small files generated here: every format, good and broken."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from edge.errors import DatasetError
from edge.eval.datasets import (FaceRecord, read_mat_folder, read_pose_mat, read_pts, read_pts_folder,
                                 read_teacher_npz, read_wflw_list, write_pts, write_teacher_npz)

RNG = np.random.default_rng(0)
POINTS_68 = np.round(RNG.uniform(0, 200, (68, 2)), 3).astype(np.float32)


def pts_text(points: np.ndarray) -> str:
    body = "\n".join(f"{x:.3f} {y:.3f}" for x, y in points)
    return f"version: 1\nn_points: {len(points)}\n{{\n{body}\n}}\n"


def write_image(path) -> None:
    cv2.imwrite(str(path), np.zeros((8, 8, 3), np.uint8))


def test_read_pts_returns_the_points(tmp_path):
    path = tmp_path / "face.pts"
    path.write_text(pts_text(POINTS_68))
    points = read_pts(str(path))
    assert points.dtype == np.float32 and points.shape == (68, 2)
    np.testing.assert_allclose(points, POINTS_68 - 1, atol=1e-3)  # 300-W counts pixels from 1, we from 0
    write_pts(str(tmp_path / "again.pts"), points)
    np.testing.assert_allclose(read_pts(str(tmp_path / "again.pts")), points, atol=1e-3)
    assert (tmp_path / "again.pts").read_text() == path.read_text()


@pytest.mark.parametrize("text, where", [
    ("version: 1\nn_points: 68\n" + "1 2\n" * 68 + "}\n", "no '{'"),
    ("version: 1\n{\n" + "1 2\n" * 68 + "}\n", "n_points"),
    ("version: 1\nn_points: 68\n{\n" + "1 2\n" * 67 + "}\n", ":3:"),
    ("version: 1\nn_points: 68\n{\n" + "1 2\n" * 68, ":3:"),
    ("version: 1\nn_points: 2\n{\n1 2\n1 x\n}\n", ":5:"),
    ("version: 1\nn_points: 2\n{\n1 2\n1 2 3\n}\n", ":5:"),
    ("version: 1\nn_points: two\n{\n}\n", ":2:"),
])
def test_read_pts_names_the_file_and_line_of_a_bad_file(tmp_path, text, where):
    path = tmp_path / "bad.pts"
    path.write_text(text)
    with pytest.raises(DatasetError, match="bad.pts") as err:
        read_pts(str(path))
    assert where in str(err.value)


def test_pts_folder_pairs_each_label_with_its_image(tmp_path):
    for stem in ("b", "a"):
        (tmp_path / f"{stem}.pts").write_text(pts_text(POINTS_68))
        write_image(tmp_path / f"{stem}.jpg")
    records = read_pts_folder(str(tmp_path))
    assert [r.image_path for r in records] == [str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg")]
    assert records[0].pose_deg is None


def test_pts_folder_without_the_image_is_an_error(tmp_path):
    (tmp_path / "lonely.pts").write_text(pts_text(POINTS_68))
    with pytest.raises(DatasetError, match="lonely.pts: no image"):
        read_pts_folder(str(tmp_path))


def wflw_line(points: np.ndarray, name: str) -> str:
    fields = [f"{v:.3f}" for v in points.reshape(-1)] + ["10", "20", "150", "160"] + ["0", "1", "0", "0", "1", "0"]
    return " ".join(fields + [name])


def test_read_wflw_list(tmp_path):
    points = RNG.uniform(0, 300, (98, 2)).astype(np.float32)
    lst = tmp_path / "list_98pt_test.txt"
    lst.write_text(wflw_line(points, "51--Dresses/51_1.jpg") + "\n\n" + wflw_line(points[::-1], "x/y.jpg") + "\n")
    records = read_wflw_list(str(lst), "/images")
    assert len(records) == 2
    assert records[0].image_path == "/images/51--Dresses/51_1.jpg"
    np.testing.assert_allclose(records[0].landmarks, points, atol=1e-3)
    np.testing.assert_allclose(records[1].landmarks, points[::-1], atol=1e-3)


def test_wflw_line_with_missing_fields_names_its_line(tmp_path):
    points = np.zeros((98, 2), np.float32)
    lst = tmp_path / "list.txt"
    lst.write_text(wflw_line(points, "a.jpg") + "\n" + wflw_line(points[:97], "b.jpg") + "\n")
    with pytest.raises(DatasetError, match=r"list.txt:2: expected 207 fields"):
        read_wflw_list(str(lst), "/images")


def save_mat(path, **arrays) -> None:
    from scipy.io import savemat

    savemat(str(path), arrays)


POSE_PARA = np.array([[0.1, 0.4, -0.2, 100.0, 120.0, 5.0, 0.001]])  # pitch, yaw, roll (rad), t, scale


def test_aflw2000_mat_uses_pt3d_68_and_turns_yaw_into_the_project_convention(tmp_path):
    pt3d = np.vstack([POINTS_68.T, RNG.uniform(-50, 50, (1, 68))])
    save_mat(tmp_path / "image00002.mat", pt3d_68=pt3d, pt2d=np.zeros((2, 21)), Pose_Para=POSE_PARA)
    record = read_pose_mat(str(tmp_path / "image00002.mat"))
    assert record.image_path == str(tmp_path / "image00002.jpg")
    np.testing.assert_allclose(record.landmarks, POINTS_68, atol=1e-4)
    np.testing.assert_allclose(record.pose_deg, [-math.degrees(0.4), math.degrees(0.1), math.degrees(-0.2)], atol=1e-4)


def test_300wlp_mat_folder_reads_pt2d(tmp_path):
    save_mat(tmp_path / "AFW_1_0.mat", pt2d=POINTS_68.T.astype(np.float64), Pose_Para=POSE_PARA)
    write_image(tmp_path / "AFW_1_0.jpg")
    (record,) = read_mat_folder(str(tmp_path))
    assert record.image_path == str(tmp_path / "AFW_1_0.jpg")
    np.testing.assert_allclose(record.landmarks, POINTS_68, atol=1e-4)
    assert record.pose_deg.dtype == np.float32 and record.pose_deg.shape == (3,)


@pytest.mark.parametrize("arrays, message", [
    ({"pt2d": np.zeros((2, 21)), "Pose_Para": POSE_PARA}, "no 68-point landmarks"),
    ({"pt2d": np.zeros((2, 68))}, "no `Pose_Para`"),
])
def test_mat_without_what_we_need_is_an_error(tmp_path, arrays, message):
    save_mat(tmp_path / "bad.mat", **arrays)
    with pytest.raises(DatasetError, match=message):
        read_pose_mat(str(tmp_path / "bad.mat"))


@pytest.mark.parametrize("content", [b"not matlab", bytes(range(256)) * 4])
def test_a_file_that_is_not_a_mat_is_an_error(tmp_path, content):
    (tmp_path / "bad.mat").write_bytes(content)
    with pytest.raises(DatasetError, match="bad.mat: cannot read"):
        read_pose_mat(str(tmp_path / "bad.mat"))


def test_teacher_npz_round_trip_keeps_only_found_faces(tmp_path):
    landmarks = RNG.uniform(0, 200, (3, 68, 2)).astype(np.float32)
    landmarks[1] = np.nan
    pose = np.array([[10, -5, 2], [np.nan] * 3, [-30, 0, 1]], np.float32)
    path = tmp_path / "teacher" / "set.npz"
    write_teacher_npz(str(path), "/data/set", ["a.jpg", "b.jpg", "c.jpg"], landmarks, pose, np.array([True, False, True]))
    records = read_teacher_npz(str(path))
    assert [r.image_path for r in records] == ["/data/set/a.jpg", "/data/set/c.jpg"]
    np.testing.assert_array_equal(records[1].landmarks, landmarks[2])
    np.testing.assert_array_equal(records[1].pose_deg, pose[2])
    assert read_teacher_npz(str(path), image_root="/elsewhere")[0].image_path == "/elsewhere/a.jpg"


def test_teacher_npz_missing_an_array_is_an_error(tmp_path):
    path = tmp_path / "old.npz"
    np.savez(path, files=np.array(["a.jpg"]), landmarks=np.zeros((1, 68, 2), np.float32))
    with pytest.raises(DatasetError, match=r"old.npz: teacher labels lack \['pose', 'ok', 'root'\]"):
        read_teacher_npz(str(path))


@pytest.mark.parametrize("landmarks, pose", [
    (POINTS_68.astype(np.float64), None),
    (POINTS_68[:, :1], None),
    (POINTS_68, np.zeros(3)),
    (POINTS_68, np.zeros(2, np.float32)),
])
def test_face_record_rejects_wrong_arrays(landmarks, pose):
    with pytest.raises(ValueError):
        FaceRecord("x.jpg", landmarks, pose)
