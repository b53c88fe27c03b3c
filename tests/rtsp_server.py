"""A real RTSP server for tests/test_rtsp.py: GStreamer's gst-rtsp-server serving one video file.

Run by the system Python, which has Debian's python3-gi and gir1.2-gst-rtsp-server-1.0 (.ci/run
installs them): `/usr/bin/python3 tests/rtsp_server.py PORT FILE`. It serves FILE at
rtsp://127.0.0.1:PORT/clip, paced in real time and from the start for every client (an H.264 .mp4
as it is; an MJPEG .avi re-encoded by jpegenc, as RTP/JPEG knows only the standard Huffman tables),
prints `ready` once it listens, and runs until killed.
`rtsp_server.py --check` exits non-zero, naming what is missing, where it could not serve.
"""
import sys
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # after require_version: it picks the API versions

PAYLOADERS = {".mp4": "qtdemux ! rtph264pay config-interval=-1", ".avi": "avidemux ! jpegdec ! jpegenc ! rtpjpegpay"}
ELEMENTS = ("filesrc", "qtdemux", "rtph264pay", "avidemux", "jpegdec", "jpegenc", "rtpjpegpay")  # plugins-good


def main(port: str, video: str) -> None:
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f'( filesrc location="{video}" ! {PAYLOADERS[Path(video).suffix]} name=pay0 )')
    server.get_mount_points().add_factory("/clip", factory)
    if not server.attach(None):
        sys.exit(f"rtsp_server: cannot listen on 127.0.0.1:{port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


def check() -> None:
    Gst.init(None)
    missing = [name for name in ELEMENTS if Gst.ElementFactory.find(name) is None]
    if missing:
        sys.exit(f"GStreamer elements missing: {', '.join(missing)} (Debian: gstreamer1.0-plugins-good)")


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        check()
    else:
        main(*sys.argv[1:3])
