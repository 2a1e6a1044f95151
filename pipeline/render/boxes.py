"""Boxes in image pixels, and how a conversation writes them.

Ground truth is always kept in absolute pixels of the stored image (as Qwen2.5-VL
grounds: ``bbox_2d = [x1, y1, x2, y2]``). The ``norm1000`` option rescales to the
0-1000 grid of Qwen-VL at conversation time only, so ``extra`` stays in pixels and a
re-export in another convention needs no re-render.
"""
from __future__ import annotations

from collections.abc import Sequence

BOX_FORMATS = ("absolute", "norm1000")


def check_box_format(box_format: str) -> None:
    if box_format not in BOX_FORMATS:
        raise ValueError(f"box_format must be one of {BOX_FORMATS}, not {box_format!r}")


def quad_to_box(points: Sequence[Sequence[float]]) -> list[float]:
    """Axis-aligned [x1, y1, x2, y2] enclosing a polygon (OCR quads, rotated lines)."""
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return [min(xs), min(ys), max(xs), max(ys)]


def clip_box(box: Sequence[float], width: int, height: int) -> list[int]:
    """Integer box inside the image: x in [0, width], y in [0, height], x1 <= x2."""
    x1, y1, x2, y2 = box
    x1, x2 = sorted((min(max(round(x1), 0), width), min(max(round(x2), 0), width)))
    y1, y2 = sorted((min(max(round(y1), 0), height), min(max(round(y2), 0), height)))
    return [x1, y1, x2, y2]


def union(boxes: Sequence[Sequence[float]]) -> list[float]:
    return [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]


def area(box: Sequence[float]) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def polygon_area(points: Sequence[Sequence[float]]) -> float:
    """Shoelace area: OCR quads are often slightly skewed, their bbox overstates them."""
    n = len(points)
    s = sum(points[i][0] * points[(i + 1) % n][1] - points[(i + 1) % n][0] * points[i][1] for i in range(n))
    return abs(s) / 2.0


def format_box(box: Sequence[float], width: int, height: int, box_format: str) -> list[int]:
    """The box as written in a conversation: pixels, or the 0-1000 grid of Qwen-VL."""
    x1, y1, x2, y2 = clip_box(box, width, height)
    if box_format == "norm1000":
        return [round(x1 * 1000 / width), round(y1 * 1000 / height), round(x2 * 1000 / width), round(y2 * 1000 / height)]
    return [x1, y1, x2, y2]
