"""Hard-cut detection from colour histograms of frames a short time apart, streaming.

Each compared frame is point-sampled to a small thumbnail (see ``thumbnail``) and
summarised as normalised HSV histograms. The distance between two frames is the
total-variation distance of those histograms, averaged over H, S and V with hue
weighted double: 0 for identical colour content, 1 for disjoint. Motion inside a shot
moves few pixels between bins; a cut replaces most of them. Decoded frames are
compared at ``detect_fps`` (not only the sampled ones): a cut lands on the first
compared frame of the new shot, within ``1 / detect_fps`` of it, or exactly on it with
``detect_fps: 0`` (every frame). Gradual transitions (fades, dissolves) spread their
change over many frames and are not detected: long shots are bounded by
``max_clip_s`` instead.

Why not PySceneDetect: one dependency less, and its OpenCV dependency would be the
largest package of the ingest image. The thresholds here are measured in
``tests/test_video_scenes.py`` on synthetic cuts and motion.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from pipeline.video.sampling import GridSampler

THUMB_SIZE = (64, 36)
BINS = (16, 8, 8)  # H, S, V
# Hue weighs half: a different shot is mostly different colours, while exposure and
# lighting changes inside a shot move V (and S). Equal weights scored a hue-only cut
# at 0.33, barely distinguishable from a strong exposure change.
WEIGHTS = (0.5, 0.25, 0.25)


@dataclass
class SceneConfig:
    enabled: bool = True
    threshold: float = 0.35  # histogram distance in [0, 1] above which a cut is declared
    min_clip_s: float = 1.0  # a cut closer than this to the clip start is ignored (flashes, flicker)
    max_clip_s: float = 60.0  # long shots are split here (and the frame buffer of a clip stays bounded)
    # Frames compared per second (0: every decoded frame). Histograms cost about as much as
    # decoding a 720p frame; at 8/s a cut is placed within 0.125 s, 4x finer than 2 fps sampling.
    detect_fps: float = 8.0

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= 1:
            raise ValueError(f"scene.threshold must be in (0, 1], got {self.threshold}")
        if self.min_clip_s < 0 or self.max_clip_s <= 0 or self.min_clip_s > self.max_clip_s:
            raise ValueError("scene: need 0 <= min_clip_s <= max_clip_s and max_clip_s > 0")
        if self.detect_fps < 0:
            raise ValueError("scene.detect_fps must be >= 0")


def thumbnail(frame) -> Image.Image:
    """A ``THUMB_SIZE`` RGB image of ``frame`` (an ``av.VideoFrame`` or an RGB array).

    For 8-bit planar YUV (nearly all video) the thumbnail is point-sampled straight from
    the decoder's planes and converted to RGB on those few pixels: FFmpeg's scaler on the
    full frame cost ~3 ms per 720p frame, ten times the decode itself. Point sampling is
    fine here: a histogram only needs a fair sample of the pixels, not a pretty image.
    """
    if isinstance(frame, np.ndarray):
        return Image.fromarray(frame).resize(THUMB_SIZE, Image.Resampling.BILINEAR)
    if frame.format.name not in _PLANAR_8BIT:
        return frame.to_image(width=THUMB_SIZE[0], height=THUMB_SIZE[1], interpolation="POINT")
    w, h = THUMB_SIZE
    ys = (np.arange(h) * frame.height // h)
    xs = (np.arange(w) * frame.width // w)
    planes = []
    for i, plane in enumerate(frame.planes[:3]):
        data = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        sy, sx = (1, 1) if i == 0 else (frame.height // plane.height, frame.width // plane.width)
        planes.append(data[np.ix_(ys // sy, xs // sx)].astype(np.float32))
    y, u, v = planes
    if frame.format.name != "yuvj420p":  # limited range (16-235) to full range
        y = (y - 16) * (255 / 219)
        u, v = (u - 128) * (255 / 224) + 128, (v - 128) * (255 / 224) + 128
    u, v = u - 128, v - 128  # BT.601: close enough for a histogram whatever the matrix
    rgb = np.stack([y + 1.402 * v, y - 0.344136 * u - 0.714136 * v, y + 1.772 * u], axis=-1)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


_PLANAR_8BIT = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p"}


def histogram(frame) -> np.ndarray:
    """Normalised HSV histograms of a thumbnail of ``frame`` (an ``av.VideoFrame`` or RGB array)."""
    hsv = np.asarray(thumbnail(frame).convert("HSV")).reshape(-1, 3).astype(np.int32)  # uint8 would overflow below
    parts = [np.bincount(hsv[:, c] * bins // 256, minlength=bins) for c, bins in enumerate(BINS)]
    return np.concatenate(parts).astype(np.float32) / hsv.shape[0]


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Weighted mean over H, S, V of the total-variation distance: in [0, 1]."""
    diff = np.abs(a - b)
    total, start = 0.0, 0
    for bins, weight in zip(BINS, WEIGHTS):
        total += weight * 0.5 * float(diff[start : start + bins].sum())
        start += bins
    return total


class CutDetector:
    """Feed frames in time order; ``update`` says whether a new clip starts at this frame."""

    def __init__(self, config: SceneConfig):
        self.config = config
        self._prev: np.ndarray | None = None
        self._grid: GridSampler | None = None
        self.clip_start: float | None = None
        self.last_distance = 0.0

    def update(self, t: float, frame) -> bool:
        if self.clip_start is None:
            self.clip_start = t
            if self.config.enabled:
                self._prev = histogram(frame)
                self._grid = GridSampler(t, self.config.detect_fps) if self.config.detect_fps else None
                if self._grid:
                    self._grid.take(t)
            return False
        cut = False
        if self.config.enabled and (self._grid is None or self._grid.take(t)):
            hist = histogram(frame)
            self.last_distance = distance(hist, self._prev)
            self._prev = hist
            cut = self.last_distance > self.config.threshold and t - self.clip_start >= self.config.min_clip_s
        if cut or t - self.clip_start >= self.config.max_clip_s:
            self.clip_start = t
            return True
        return False
