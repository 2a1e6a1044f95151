"""Image geometry scores: the smallest side, the largest side, the most extreme aspect ratio.

Tiny images carry no detail after tiling (a 20px icon becomes one blurry 448px
tile); extreme strips (banners, 1px dividers) tile into many near-empty tiles and
waste the token budget. Over a multi-image sample the scores describe its worst
image, so one threshold covers every image.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class GeometryScores:
    min_side: int = 0  # smallest side of any image; 0 when there are no images
    max_side: int = 0  # largest side of any image; 0 when there are no images
    aspect_ratio: float = 0.0  # max(w/h, h/w) of the most extreme image (>= 1); 0 when none


def measure_geometry(image_sizes: list[tuple[int, int]]) -> GeometryScores:
    """Scores over all ``(width, height)`` pairs of a sample; all zeros for a text-only sample."""
    if not image_sizes:
        return GeometryScores()
    for width, height in image_sizes:
        if width <= 0 or height <= 0:
            # Decoded images are never empty: a zero side is a bug upstream, not data.
            raise ValueError(f"image size must be positive, got {width}x{height}")
    return GeometryScores(
        min_side=min(min(w, h) for w, h in image_sizes),
        max_side=max(max(w, h) for w, h in image_sizes),
        aspect_ratio=max(max(w / h, h / w) for w, h in image_sizes),
    )
