"""Which frames of a clip become sample frames: a time grid over presentation timestamps.

A grid point at time ``g`` takes the first frame presented at or after ``g`` (once: a
frame held on screen across several grid points is taken once). Sampling thus follows
real time on variable-frame-rate files, and every kept frame keeps its own exact
timestamp; the grid only decides *which* frames, never *when* they are.

Two rates: while decoding, candidates are collected on the grid of the highest rate a
clip may be sampled at (``max_fps``); when the clip closes and its duration is known,
the final rate is chosen (fixed, or Qwen2.5-VL-style dynamic within [min_fps, max_fps])
and the final frames are picked from the candidates on that coarser grid.
"""
from __future__ import annotations

import math
from collections.abc import Sequence


class GridSampler:
    """Streaming: ``take(t)`` for each frame in time order says whether it is a candidate."""

    def __init__(self, start: float, fps: float):
        self.start, self.step = start, 1.0 / fps
        self._next = start  # next grid point not yet served

    def take(self, t: float) -> bool:
        if t + 1e-9 < self._next:
            return False
        # Skip every grid point this frame serves: the next frame serves the one after t.
        k = math.floor((t - self.start) / self.step + 1e-9) + 1
        self._next = self.start + k * self.step
        return True


def choose_fps(duration_s: float, min_fps: float, max_fps: float, max_frames: int) -> float:
    """The clip's sampling rate: as high as ``max_fps`` allows while ``max_frames`` frames span it.

    Fixed-rate sampling is the case ``min_fps == max_fps``. Short clips get ``max_fps``,
    long ones a lower rate down to ``min_fps``; below that, frames are dropped uniformly.
    """
    if duration_s <= 0:
        return max_fps
    return min(max_fps, max(min_fps, max_frames / duration_s))


def select_on_grid(times: Sequence[float], start: float, fps: float) -> list[int]:
    """Indices into ``times`` (increasing) that a grid of ``fps`` from ``start`` picks."""
    grid = GridSampler(start, fps)
    return [i for i, t in enumerate(times) if grid.take(t)]


def uniform_subset(n: int, keep: int) -> list[int]:
    """``keep`` indices of ``range(n)`` spread evenly, first and last included when keep >= 2."""
    if keep >= n:
        return list(range(n))
    if keep <= 0:
        return []
    if keep == 1:
        return [n // 2]
    return [round(i * (n - 1) / (keep - 1)) for i in range(keep)]
