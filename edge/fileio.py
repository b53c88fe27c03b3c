"""Atomic file writes: a crash or Ctrl-C never leaves half a model, engine or sidecar behind."""
from __future__ import annotations

import hashlib
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Union

PROJECT_ROOT = Path(__file__).resolve().parents[1]  # the checkout: configs/, models/, engines/, weights/
MODELS_DIR = PROJECT_ROOT / "models"


def ensure_parent(path: str) -> str:
    """Make the folder `path` goes into; returns that folder."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    return folder


@contextmanager
def atomic_path(path: str, suffix: str = "") -> Iterator[str]:
    """A temporary file beside `path` for the block to write; renamed over `path` (mode 0644)
    only when the block succeeds, removed otherwise. `suffix` keeps tools that look at the
    extension (ONNX Runtime, torch) happy."""
    folder = ensure_parent(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp makes it private; these are ordinary readable files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_atomic(path: str, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def file_sha256(path: Union[str, "os.PathLike[str]"]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB pieces (engines and models are checked against it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
