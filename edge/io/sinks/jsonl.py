"""JSON lines: one object per frame (index, t_ms, faces, per-stage ms), for programs to read."""
from __future__ import annotations

import json
import os
from typing import Optional

import numpy as np

from edge.errors import ConfigError
from edge.io.sinks import FrameResult, SinkOptions, frame_record, output_path


class JsonLinesSink:
    """One JSON object per frame: index, t_ms, faces, per-stage ms (`frame_record`).

    Unbuffered: each line goes to the OS whole as it is written, so a crash or a stop loses none. A
    write that fails (disk full, file size limit) is cut back to the last whole line and ends the run."""

    wants_picture = False

    def __init__(self, path: str, options: SinkOptions = SinkOptions(flag="--json")) -> None:
        self.uri = self.path = output_path(path, options.flag)
        self._flag = options.flag
        try:
            self._file = open(path, "wb", buffering=0)
        except OSError as exc:
            raise ConfigError(f"{self._flag} {path}: cannot write there ({exc.strerror}); pick another path") from exc
        self.lines = 0
        self._whole = 0  # bytes of whole lines in the file

    def write(self, result: FrameResult, picture: Optional[np.ndarray] = None) -> bool:
        line = frame_record(result)
        data = (json.dumps(line) + "\n").encode()
        try:
            rest = memoryview(data)
            while rest:
                rest = rest[self._file.write(rest):]  # a write cut short by a full disk fails on the rest
        except OSError as exc:
            self._cut_to_whole_lines()
            raise ConfigError(f"{self._flag} {self.path}: cannot write line {self.lines + 1} ({exc.strerror}); the "
                              f"{self.lines} before it are whole") from exc
        self._whole += len(data)
        self.lines += 1
        return True

    def _cut_to_whole_lines(self) -> None:
        try:
            os.ftruncate(self._file.fileno(), self._whole)
        except OSError:
            pass  # a device (/dev/full, a pipe) cannot be cut; there is no file to keep whole either

    def close(self) -> None:
        self._file.close()
