"""Fit a clip into a token budget: lower the frame resolution first, then the frame count.

The cost is computed exactly as the catalog will count it. ``StoreMedia`` tiles every
frame of an n-frame sample with ``tiling.for_n_images(n)`` (InternVL splits the tile
budget across images) and ``image_token_count`` adds ``<img>``/``</img>`` per image:

    image_tokens = sum over frames of (count_tiles(w, h, tiling.for_n_images(n)) * tokens_per_tile + 2)

So the planner calls the same ``count_tiles`` on the very size the JPEG is written at.
Two consequences of InternVL tiling worth knowing:

- the tile grid follows the aspect ratio, not the pixel count, so shrinking a frame
  lowers its cost only where the grid choice depends on area (near-square frames);
  at the smallest allowed resolution the frame count has to go;
- fewer frames get *more* tiles each (``max_tiles // n``), so cost is not monotone in n:
  the planner searches n downwards instead of solving for it.

Frames are also never stored larger than the tile grid they will be cut into
(``cols * tile_size`` x ``rows * tile_size``): extra pixels would be resized away by
the trainer anyway.
"""
from __future__ import annotations

from dataclasses import dataclass

from model.chat_template import IMAGE_WRAPPER_TOKENS
from pipeline.tiling import TilingConfig, choose_grid, count_tiles

RESOLUTION_STEP = 0.8  # each rung of the resolution ladder is 80% of the previous one's sides


@dataclass(frozen=True)
class FramePlan:
    n_frames: int
    width: int
    height: int
    tiles_per_frame: int
    image_tokens: int  # what the catalog will record for the sample (exact)


def fit_within(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Scale down (never up) so the longer side is at most ``max_side``."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def resolution_ladder(width: int, height: int, max_side: int, min_side: int) -> list[tuple[int, int]]:
    """Sizes from ``fit_within(max_side)`` down by ``RESOLUTION_STEP`` to a shorter side of ``min_side``."""
    w, h = fit_within(width, height, max_side)
    sizes = [(w, h)]
    floor_scale = min(1.0, min_side / min(w, h))  # the smallest rung: shorter side == min_side
    scale = 1.0
    while scale * RESOLUTION_STEP > floor_scale:
        scale *= RESOLUTION_STEP
        sizes.append((max(1, round(w * scale)), max(1, round(h * scale))))
    if floor_scale < 1.0:
        sizes.append((max(1, round(w * floor_scale)), max(1, round(h * floor_scale))))
    return sizes


def clamp_to_grid(width: int, height: int, tiling: TilingConfig) -> tuple[int, int]:
    """The size no larger than the tile grid this frame is cut into (pixels beyond it are wasted)."""
    cols, rows = choose_grid(width, height, tiling)
    scale = min(1.0, cols * tiling.tile_size / width, rows * tiling.tile_size / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def frame_tokens(width: int, height: int, n_frames: int, tiling: TilingConfig) -> tuple[int, int]:
    """(tiles, tokens) of one frame of an ``n_frames`` sample, wrapper tokens included."""
    tiles = count_tiles(width, height, tiling.for_n_images(n_frames))
    return tiles, tiles * tiling.tokens_per_tile + IMAGE_WRAPPER_TOKENS


def plan_frames(
    n_candidates: int, width: int, height: int, *, token_budget: int, tiling: TilingConfig,
    max_side: int, min_side: int,
) -> FramePlan | None:
    """The most frames, then the largest resolution, whose image tokens fit ``token_budget``.

    ``width`` x ``height`` is the source frame size. None when not even one frame at the
    smallest resolution fits.
    """
    ladder = resolution_ladder(width, height, max_side, min_side)
    for n in _frame_counts(n_candidates, ladder, token_budget, tiling):
        per_n = tiling.for_n_images(n)
        for w, h in ladder:  # resolution first: the largest size that fits wins
            w, h = clamp_to_grid(w, h, per_n)
            tiles, tokens = frame_tokens(w, h, n, tiling)
            if n * tokens <= token_budget:
                return FramePlan(n, w, h, tiles, n * tokens)
    return None


def _frame_counts(n_candidates: int, ladder, token_budget: int, tiling: TilingConfig):
    """Frame counts to try, most first, skipping counts that cannot fit.

    From ``max_tiles`` frames on, every frame gets a one-tile budget, so the cheapest
    frame costs the same for all larger n and the largest feasible n is a division.
    """
    n = n_candidates
    if n >= tiling.max_tiles:
        cheapest = min(frame_tokens(*clamp_to_grid(w, h, tiling.for_n_images(n)), n, tiling)[1] for w, h in ladder)
        n = max(min(n, token_budget // cheapest), min(n, tiling.max_tiles - 1))
    yield from range(n, 0, -1)
