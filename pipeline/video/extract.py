"""One video file in, clips out: each clip's frames chosen, sized to the token budget, JPEG-encoded.

Steps per clip, once its bounds are known (``clips.py``):
1. the clip's rate: fixed ``fps``, or dynamic within [min_fps, max_fps] so that at most
   ``max_frames`` frames span it; frames are picked on that grid from the candidates;
2. more than ``max_frames``: dropped uniformly;
3. the token budget (``budget.py``): lower resolution first, then drop frames uniformly;
4. JPEG at the planned size; each frame keeps its exact presentation time.
"""
from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from PIL import Image

from pipeline.tiling import TilingConfig
from pipeline.video.budget import FramePlan, plan_frames
from pipeline.video.clips import Clip, scene_clips, segment_clips
from pipeline.video.sampling import choose_fps, select_on_grid, uniform_subset
from pipeline.video.scenes import SceneConfig

if TYPE_CHECKING:  # PyAV loads only where videos are decoded, not wherever specs are parsed
    from pipeline.video.decode import VideoReader


@dataclass
class ExtractConfig:
    fps: float = 2.0  # fixed rate (Qwen2-VL: 2 fps); ignored when min_fps/max_fps are set
    min_fps: float | None = None  # dynamic rate (Qwen2.5-VL): both set, fps chosen per clip
    max_fps: float | None = None
    max_frames: int = 768  # per clip, before the token budget
    token_budget: int = 16384  # image tokens per clip sample, exactly as the catalog counts them
    # Must equal the ingest spec's ``tiling``: frame token costs are computed with it.
    tiling: TilingConfig = field(default_factory=TilingConfig)
    max_frame_side: int = 448  # frames are stored no larger (one 448 tile: what most frames get)
    min_frame_side: int = 224  # the resolution ladder stops here before frames are dropped
    jpeg_quality: int = 90
    max_source_pixels: int = 40_000_000  # larger frame sizes are rejected (too_large) before decoding
    scene: SceneConfig = field(default_factory=SceneConfig)

    def __post_init__(self) -> None:
        if (self.min_fps is None) != (self.max_fps is None):
            raise ValueError("set both min_fps and max_fps (dynamic rate) or neither (fixed fps)")
        lo, hi = self.rate_range
        if not 0 < lo <= hi:
            raise ValueError(f"need 0 < min_fps <= max_fps, got {lo}..{hi}")
        if self.max_frames < 1 or self.token_budget < 1:
            raise ValueError("max_frames and token_budget must be >= 1")
        if not 1 <= self.min_frame_side <= self.max_frame_side:
            raise ValueError("need 1 <= min_frame_side <= max_frame_side")
        if not 1 <= self.jpeg_quality <= 95:
            raise ValueError("jpeg_quality must be in 1..95")

    @property
    def rate_range(self) -> tuple[float, float]:
        return (self.min_fps, self.max_fps) if self.min_fps is not None else (self.fps, self.fps)


@dataclass
class ExtractedClip:
    start: float
    end: float
    fps: float  # the rate frames were picked at
    candidates: int  # frames on the fps grid before max_frames and the budget
    times: list[float]  # exact presentation times of the kept frames (source video time)
    jpegs: list[bytes]
    plan: FramePlan | None  # None: not even one frame fits the token budget
    segment: int | None = None


def finish_clip(clip: Clip, config: ExtractConfig) -> ExtractedClip:
    lo, hi = config.rate_range
    fps = choose_fps(clip.duration, lo, hi, config.max_frames)
    picked = select_on_grid(clip.times, clip.start, fps)
    n_on_grid = len(picked)
    picked = [picked[i] for i in uniform_subset(len(picked), config.max_frames)]
    height, width = clip.frames[0].shape[:2] if clip.frames else (0, 0)
    plan = None
    if picked:
        plan = plan_frames(
            len(picked), width, height, token_budget=config.token_budget, tiling=config.tiling,
            max_side=config.max_frame_side, min_side=config.min_frame_side,
        )
    if plan is None:
        return ExtractedClip(clip.start, clip.end, fps, n_on_grid, [], [], None, clip.segment)
    picked = [picked[i] for i in uniform_subset(len(picked), plan.n_frames)]
    jpegs = [_jpeg(clip.frames[i], plan.width, plan.height, config.jpeg_quality) for i in picked]
    times = [clip.times[i] for i in picked]
    return ExtractedClip(clip.start, clip.end, fps, n_on_grid, times, jpegs, plan, clip.segment)


def _jpeg(rgb, width: int, height: int, quality: int) -> bytes:
    img = Image.fromarray(rgb)
    if img.size != (width, height):
        img = img.resize((width, height), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def extract_clips(
    reader: VideoReader, config: ExtractConfig, segments: list[tuple[float, float]] | None = None,
) -> Iterator[ExtractedClip]:
    """Clips of an open video, by scene (default) or by the given (start, end) segments.

    Raises ``VideoDecodeError`` (from the reader) when no frame decodes; after the
    iterator ends, ``reader.report.partial`` says whether the file decoded whole.
    """
    candidate_fps = config.rate_range[1]
    frames = reader.frames()
    fps = reader.info.average_fps
    if segments is not None:
        clips = segment_clips(frames, segments, candidate_fps, config.max_frame_side, fps)
    else:
        clips = scene_clips(frames, config.scene, candidate_fps, config.max_frame_side, fps)
    for clip in clips:
        yield finish_clip(clip, config)
