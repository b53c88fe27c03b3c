"""Where an evaluation's results go: the output folder, per-item CSV, summary JSON, progress, console."""
from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence, TypeVar

from tqdm import tqdm

from edge.errors import EdgeError

T = TypeVar("T")


def output_dir(path: str) -> Path:
    """The results folder, created if needed; a file in its place is a one-line error."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise EdgeError(f"--out {out}: is a file, not a folder; give a folder for the results")
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """One row per item; floats to 6 significant digits, inf for a face that was not found."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return path


def write_json(path: Path, data: Mapping[str, Any]) -> Path:
    """Strict JSON: NaN and inf become null so any reader can load the file."""
    with open(path, "w") as f:
        json.dump(_strict(data), f, indent=2, sort_keys=False)
        f.write("\n")
    return path


def progress(items: Iterable[T], desc: str, unit: str, total: Optional[int] = None) -> Iterator[T]:
    """A tqdm bar on stderr (stdout stays for the summary)."""
    return iter(tqdm(items, desc=desc, total=total, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=False, disable=None))


def print_summary(title: str, summary: Mapping[str, Any], keys: Sequence[str], files: Sequence[Path]) -> None:
    """The few numbers that matter, then where everything else is."""
    print(title)
    for key in keys:
        value = summary[key]
        if isinstance(value, Mapping):
            value = "  ".join(f"{k} {v:.4f}" for k, v in value.items())
        print(f"  {key:<22} {value:.4f}" if isinstance(value, float) else f"  {key:<22} {value}")
    for path in files:
        print(f"  wrote {path}")


def _strict(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value
