"""Cut a decoded video into clips in one streaming pass, collecting candidate frames per clip.

Two ways to get clip bounds:

- ``scene_clips``: shot boundaries from the histogram cut detector (bounded by
  ``max_clip_s``); a tail shorter than ``min_clip_s`` at the end of the file joins the
  clip before it, so the last sample is not a one-frame stub;
- ``segment_clips``: bounds given by the input (clip-level captions with start/end);
  segments may overlap (dense captions do), a frame then feeds every segment it is in.

Only candidate frames are kept (on the ``max_fps`` grid, shrunk to ``max_side``), so
memory is bounded by clip length x max_fps, whatever the source frame rate.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from pipeline.video.budget import fit_within
from pipeline.video.sampling import GridSampler
from pipeline.video.scenes import CutDetector, SceneConfig


@dataclass
class Clip:
    start: float  # presentation time of its first frame (seconds, source video time)
    end: float  # start of the next clip, or end of the last frame
    times: list[float] = field(default_factory=list)  # candidate frames' exact timestamps
    frames: list[np.ndarray] = field(default_factory=list)  # RGB, all of one size
    segment: int | None = None  # index of the input segment that defined it

    @property
    def duration(self) -> float:
        return self.end - self.start


class _Collector:
    def __init__(self, start: float, fps: float, max_side: int, segment: int | None = None):
        self.clip = Clip(start, start, segment=segment)
        self.grid = GridSampler(start, fps)
        self.max_side = max_side
        self.size: tuple[int, int] | None = None

    def offer(self, t: float, frame) -> None:
        if self.grid.take(t):
            if self.size is None:  # fixed per clip: the budget planner assumes one frame size
                self.size = fit_within(frame.width, frame.height, self.max_side)
            w, h = self.size
            self.clip.frames.append(frame.to_ndarray(format="rgb24", width=w, height=h))
            self.clip.times.append(t)


class _EndClock:
    """The end time of the last frame: its pts plus the last inter-frame gap (or 1/fps)."""

    def __init__(self, default_fps: float | None):
        self.default = 1.0 / default_fps if default_fps else 0.0
        self.last: float | None = None
        self.gap = self.default

    def tick(self, t: float) -> None:
        if self.last is not None:
            self.gap = t - self.last
        self.last = t

    @property
    def end(self) -> float:
        return (self.last or 0.0) + self.gap


def scene_clips(
    frames: Iterable[tuple[float, object]], scene: SceneConfig, candidate_fps: float, max_side: int,
    average_fps: float | None = None,
) -> Iterator[Clip]:
    detector = CutDetector(scene)
    clock = _EndClock(average_fps)
    pending: Clip | None = None  # one clip of look-ahead, for merging a short tail into it
    current: _Collector | None = None
    for t, frame in frames:
        new_clip = detector.update(t, frame)
        if current is None or new_clip:
            if current is not None:
                current.clip.end = t
                if pending is not None:
                    yield pending
                pending = current.clip
            current = _Collector(t, candidate_fps, max_side)
        current.offer(t, frame)
        clock.tick(t)
    if current is None:
        return
    current.clip.end = clock.end
    tail = current.clip
    if pending is not None and tail.duration < scene.min_clip_s and _same_size(pending, tail):
        pending.end = tail.end
        pending.times += tail.times
        pending.frames += tail.frames
        tail = None
    if pending is not None:
        yield pending
    if tail is not None:
        yield tail


def _same_size(a: Clip, b: Clip) -> bool:
    return not a.frames or not b.frames or a.frames[0].shape == b.frames[0].shape


def segment_clips(
    frames: Iterable[tuple[float, object]], segments: list[tuple[float, float]], candidate_fps: float,
    max_side: int, average_fps: float | None = None,
) -> Iterator[Clip]:
    """One clip per (start, end) segment, yielded as each closes; segments with no frame are skipped."""
    order = sorted(range(len(segments)), key=lambda i: segments[i][0])
    open_: dict[int, _Collector] = {}
    nxt = 0
    clock = _EndClock(average_fps)
    for t, frame in frames:
        while nxt < len(order) and segments[order[nxt]][0] <= t:
            i = order[nxt]
            if t < segments[i][1]:
                open_[i] = _Collector(t, candidate_fps, max_side, segment=i)
            nxt += 1
        for i in [i for i in open_ if t >= segments[i][1]]:
            yield _close(open_.pop(i), segments[i][1])
        for collector in open_.values():
            collector.offer(t, frame)
        clock.tick(t)
    for i, collector in sorted(open_.items()):  # segments running past the last frame end with it
        yield _close(collector, min(segments[i][1], clock.end))


def _close(collector: _Collector, end: float) -> Clip:
    collector.clip.end = end
    return collector.clip
