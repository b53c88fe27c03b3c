"""Frame sources that can be tested without a camera: file, folder, demo, live-camera mechanics, errors."""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.errors import SourceError
from edge.io import camera
from edge.io.demo import DemoSource, render_demo_frame
from edge.io.sources import FolderSource, LiveOptions, VideoFileSource
from edge.io.uri import open_source


def numbered(i: int, size=(48, 64)) -> np.ndarray:
    """A frame whose brightness encodes its number, robust to lossy video coding."""
    return np.full((*size, 3), 10 * i, np.uint8)


def write_video(path: Path, frames: int, fps: float = 10.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (64, 48))
    for i in range(frames):
        writer.write(numbered(i))
    writer.release()
    return path


def test_video_file_every_frame_in_order(tmp_path):
    path = write_video(tmp_path / "clip.mp4", 12)
    with open_source(f"file://{path}") as src:
        frames = list(src)
    assert isinstance(src, VideoFileSource) and not src.live and src.length == 12
    assert [f.index for f in frames] == list(range(12))
    assert [f.t_ms for f in frames] == pytest.approx([100.0 * i for i in range(12)])
    assert [int(round(f.image.mean() / 10)) for f in frames] == list(range(12))
    assert frames[0].image.shape == (48, 64, 3) and src.skipped == 0
    assert not any(f.gap_s for f in frames)  # a file that ends, ends: no outage, nothing reopened


def test_plain_path_is_a_video_file(tmp_path):
    path = write_video(tmp_path / "clip.mp4", 3)
    with open_source(str(path)) as src:
        assert len(list(src)) == 3


def test_folder_sorted_and_undecodable_image_skipped(tmp_path):
    for name, i in (("b.png", 2), ("a.png", 1), ("c.jpg", 3)):
        cv2.imwrite(str(tmp_path / name), numbered(i))
    (tmp_path / "b2.png").write_bytes(b"not an image")
    (tmp_path / "notes.txt").write_text("ignored")
    with open_source(str(tmp_path)) as src:
        frames = list(src)
    assert isinstance(src, FolderSource) and src.length == 4
    assert [int(round(f.image.mean() / 10)) for f in frames] == [1, 2, 3]  # a, b, (b2 skipped), c
    assert [f.index for f in frames] == [0, 1, 2] and src.skipped == 1


def test_empty_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(SourceError, match="no images in folder") as err:
        open_source(str(tmp_path))
    assert "\n" not in str(err.value)


def test_demo_is_deterministic_and_moves(astronaut_bgr):
    first = [f.image for f in DemoSource(astronaut_bgr)]
    assert len(first) == 300 and first[0].shape == (360, 640, 3)
    again = [render_demo_frame(astronaut_bgr, i) for i in (0, 100, 210, 299)]
    assert all(np.array_equal(a, first[i]) for a, i in zip(again, (0, 100, 210, 299)))
    assert np.abs(first[0].astype(int) - first[100].astype(int)).mean() > 20  # zoom + roll change the view
    assert (first[210] == 114).all(axis=2).mean() > 0.5  # face panned out: mostly the gray border


@pytest.mark.parametrize("uri, message", [
    ("/dev/video99", "camera /dev/video99 not found"),
    ("v4l2:///dev/video99", "camera /dev/video99 not found"),
    ("gopher://x", "unknown input URI scheme"),
    ("no/such/clip.mp4", "video file not found"),
    ("csi://front", "expected csi://N"),
])
def test_bad_inputs_are_one_line_source_errors(uri, message):
    with pytest.raises(SourceError, match=message) as err:
        open_source(uri)
    assert "\n" not in str(err.value)


def test_csi_without_gstreamer_says_to_use_the_system_opencv(monkeypatch):
    monkeypatch.setattr(camera, "has_gstreamer", lambda: False)
    with pytest.raises(SourceError, match="GStreamer.*system OpenCV"):
        open_source("csi://0")


@pytest.mark.parametrize("content, reason", [
    (b"", "the file is empty"),
    (b"meeting notes, not a video\n" * 40, "not a video file"),
    (b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 1000, "OpenCV has no decoder for its codec, or the file is damaged"),
])
def test_an_unreadable_video_says_what_is_wrong_with_it(tmp_path, content, reason):
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(content)
    with pytest.raises(SourceError) as err:
        open_source(str(bad))
    assert str(err.value).startswith(f"cannot open video {bad}: {reason}") and "\n" not in str(err.value)


class FakeCapture:
    """A camera that delivers `frames` numbered frames as fast as it can, then unplugs."""

    def __init__(self, frames: int, opens: bool = True) -> None:
        self.left, self.count, self.opens = frames, 0, opens

    def isOpened(self) -> bool:
        return self.opens

    def read(self):
        if self.left <= 0:
            return False, None
        self.left -= 1
        self.count += 1
        time.sleep(0.0005)
        return True, np.full((4, 4, 3), self.count % 256, np.uint8)

    def release(self) -> None:
        pass


FAST = LiveOptions(reconnect_s=0.001, reconnect_max_s=0.004, give_up_s=0.1)


def test_live_source_keeps_only_the_newest_frame_then_reports_the_lost_camera():
    captures = iter([FakeCapture(200)] + [FakeCapture(0, opens=False)] * 1000)
    src = camera.LiveSource("fake://cam", lambda: next(captures), FAST)
    seen = []
    with pytest.raises(SourceError, match="stopped delivering frames and did not come back within 0.1 s") as err:
        for frame in src:
            seen.append(int(frame.image[0, 0, 0]))
            time.sleep(0.01)  # a slow pipeline
    src.close()
    assert seen == sorted(set(seen)) and len(seen) < 100  # frames dropped, never queued or repeated
    assert seen[-1] == 200 % 256  # the newest frame is delivered before the error
    assert "\n" not in str(err.value)


def test_live_source_that_never_opens():
    with pytest.raises(SourceError, match="cannot open camera"):
        camera.LiveSource("fake://cam", lambda: FakeCapture(0, opens=False))


def test_a_camera_that_comes_back_is_reopened_with_backoff_and_the_gap_logged_once():
    captures = iter([FakeCapture(5), FakeCapture(0, opens=False), FakeCapture(0, opens=False),
                     FakeCapture(0, opens=False), FakeCapture(5)] + [FakeCapture(0, opens=False)] * 1000)
    opened_at = []

    def reopen():
        opened_at.append(time.monotonic())
        return next(captures)

    logged = []
    src = camera.LiveSource("fake://cam", reopen, LiveOptions(reconnect_s=0.1, reconnect_max_s=0.2, give_up_s=1.0),
                            log=logged.append)
    frames = []
    with pytest.raises(SourceError, match="within 1 s"):
        for frame in src:
            frames.append(frame)
    src.close()
    waits = np.diff(opened_at[:5])  # first open -> three failed reopens -> the one that works
    assert waits[0] >= 0.1 and waits[1] >= 0.2 and 0.2 <= waits[2] < 0.35 and waits[3] >= 0.2  # doubled, capped
    assert [int(f.image[0, 0, 0]) for f in frames][-1] == 5
    gaps = [i for i, f in enumerate(frames) if f.gap_s]
    assert len(gaps) == 1 and frames[gaps[0]].gap_s >= 0.1 + 0.2 + 0.2 + 0.2  # one outage, on the first frame after
    after, before = frames[gaps[0]], frames[gaps[0] - 1]
    assert after.t_ms - before.t_ms >= 1000 * after.gap_s - 1  # frames are stamped when captured
    assert [f.index for f in frames] == list(range(len(frames)))
    # one line when lost and one when back for the first outage (four tries), one when lost for the last
    lost = "input fake://cam lost; reopening it every 0.1 to 0.2 s for up to 1 s"
    assert len(logged) == 3 and logged[0] == logged[2] == lost, logged
    assert logged[1] == f"input fake://cam is back after {after.gap_s:.1f} s"


def test_closing_during_an_outage_does_not_wait_for_the_backoff():
    captures = iter([FakeCapture(1)] + [FakeCapture(0, opens=False)] * 10)
    src = camera.LiveSource("fake://cam", lambda: next(captures), LiveOptions(reconnect_s=30.0))
    frames = iter(src)
    next(frames)
    time.sleep(0.05)  # the reader has lost the camera and waits 30 s before reopening it
    start = time.monotonic()
    src.close()
    assert time.monotonic() - start < 1.0 and not src._thread.is_alive()
    assert next(frames, None) is None  # a closed source ends, it does not raise


class ThrowingCapture(FakeCapture):
    def read(self):
        raise cv2.error("OpenCV(4.11.0) cap.cpp:1: error: (-2:Unspecified error)\n  in function 'read'\n")


def test_a_capture_that_throws_ends_the_run_with_one_line():
    src = camera.LiveSource("fake://cam", lambda: ThrowingCapture(0))
    with pytest.raises(SourceError) as err:
        next(iter(src))
    src.close()
    assert str(err.value) == ("camera fake://cam failed: OpenCV(4.11.0) cap.cpp:1: error: (-2:Unspecified error) "
                              "in function 'read'")


class HangingCapture(FakeCapture):
    def read(self):
        time.sleep(0.3)
        return False, None


def test_live_source_whose_read_hangs_is_a_source_error():
    src = camera.LiveSource("fake://cam", lambda: HangingCapture(0), stall_s=0.1)
    with pytest.raises(SourceError, match="no frame for 0.1 s"):
        next(iter(src))
    src.close()


def test_the_real_clip_reads_every_frame(hamilton_clip):
    with open_source(str(hamilton_clip)) as src:
        frames = list(src)
    assert len(frames) == src.length == 275 and src.skipped == 0
    assert frames[-1].image.shape == (360, 640, 3)
    assert frames[-1].t_ms == pytest.approx(274 * 1000 / 29.97, abs=0.5)
