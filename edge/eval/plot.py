"""The CED plot and a contact sheet of the worst faces, drawn with OpenCV.

OpenCV is already a runtime dependency (also on a Jetson); matplotlib would add a large package
and its font/backend set-up for one line chart with axes, a grid and a legend.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

Curve = Tuple[str, np.ndarray, np.ndarray]  # legend text, x (NME), y (fraction of faces)

_SIZE = (720, 540)  # width, height in px
_MARGIN = (70, 30, 40, 60)  # left, top, right, bottom
_COLORS = [(180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148)]  # BGR tab10
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def draw_ced(curves: Sequence[Curve], title: str) -> np.ndarray:
    """A white BGR image with each CED curve over NME in [0, max x] and fraction in [0, 1]."""
    legend_h = 22 * len(curves)  # the legend goes under the axes, where it hides no curve
    w, h = _SIZE[0], _SIZE[1] + legend_h
    left, top, right, bottom = _MARGIN
    bottom += legend_h
    img = np.full((h, w, 3), 255, np.uint8)
    x_max = max(float(x[-1]) for _, x, _ in curves)

    def to_px(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        px = left + x / x_max * (w - left - right)
        py = h - bottom - y * (h - top - bottom)
        return np.stack([px, py], axis=-1).round().astype(np.int32)

    for tick in np.linspace(0, 1, 6):
        _grid_line(img, to_px(np.array([0, x_max]), np.array([tick, tick])), f"{tick:.1f}", "y")
        xt = tick * x_max
        _grid_line(img, to_px(np.array([xt, xt]), np.array([0, 1])), f"{xt:.2f}", "x")
    cv2.rectangle(img, (left, top), (w - right, h - bottom), (0, 0, 0), 1)
    for i, (_, x, y) in enumerate(curves):
        cv2.polylines(img, [to_px(np.asarray(x), np.asarray(y))], False, _COLORS[i % len(_COLORS)], 2, cv2.LINE_AA)
    for i, (label, _, _) in enumerate(curves):
        y = h - legend_h + 22 * i
        cv2.line(img, (left, y - 5), (left + 24, y - 5), _COLORS[i % len(_COLORS)], 2, cv2.LINE_AA)
        _text(img, label, (left + 32, y), (0, 0, 0))
    _text(img, f"{title}   (y: fraction of faces)", (left, top - 10), (0, 0, 0))
    _text(img, "NME (inter-ocular)", (w // 2 - 80, h - legend_h - 22), (0, 0, 0))
    return img


def write_ced(path: str, curves: Sequence[Curve], title: str) -> str:
    """Draw and save the plot as PNG; returns the path."""
    if not cv2.imwrite(path, draw_ced(curves, title)):
        raise OSError(f"{path}: cannot write the CED plot (is the folder writable?)")
    return path


def _grid_line(img: np.ndarray, ends: np.ndarray, label: str, axis: str) -> None:
    (x0, y0), (x1, y1) = ends.tolist()
    cv2.line(img, (x0, y0), (x1, y1), (225, 225, 225), 1)
    org = (x0 - 40, y0 + 5) if axis == "y" else (x0 - 16, y0 + 20)
    _text(img, label, org, (60, 60, 60))


def _text(img: np.ndarray, text: str, org: Tuple[int, int], color: Tuple[int, int, int]) -> None:
    cv2.putText(img, text, org, _FONT, 0.5, color, 1, cv2.LINE_AA)


def draw_faces(images: Sequence[np.ndarray], truths: Sequence[np.ndarray], predictions: Sequence[Optional[np.ndarray]],
               captions: Sequence[str], tile: int = 200, columns: int = 6) -> np.ndarray:
    """A contact sheet: each face cut square around its labels, labels green, prediction red (none: missed)."""
    tiles = []
    for image, truth, pred, caption in zip(images, truths, predictions, captions):
        lo, hi = truth.min(0), truth.max(0)
        centre, side = (lo + hi) / 2, 1.6 * float((hi - lo).max())
        scale = tile / side
        matrix = np.array([[scale, 0, tile / 2 - scale * centre[0]], [0, scale, tile / 2 - scale * centre[1]]])
        cell = cv2.warpAffine(image, matrix, (tile, tile), borderValue=(40, 40, 40))
        for points, colour in ((truth, (80, 220, 80)), (pred, (60, 60, 255))):
            if points is not None:
                for x, y in points @ matrix[:, :2].T + matrix[:, 2]:
                    cv2.circle(cell, (int(round(x)), int(round(y))), 2, colour, -1, cv2.LINE_AA)
        _text(cell, caption, (4, tile - 6), (255, 255, 255))
        tiles.append(cell)
    while len(tiles) % columns:
        tiles.append(np.zeros((tile, tile, 3), np.uint8))
    rows = [np.hstack(tiles[i:i + columns]) for i in range(0, len(tiles), columns)]
    return np.vstack(rows) if rows else np.zeros((tile, tile * columns, 3), np.uint8)
