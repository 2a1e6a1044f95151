"""The clip token budget is exact (the catalog's own count) and spent resolution-first."""
from __future__ import annotations

import itertools

import pytest

from model.chat_template import image_token_count
from pipeline.tiling import TilingConfig, count_tiles
from pipeline.video.budget import clamp_to_grid, plan_frames, resolution_ladder


def catalog_tokens(n: int, width: int, height: int, tiling: TilingConfig) -> int:
    """How StoreMedia + BuildSample count an n-frame sample's image tokens."""
    per_image = tiling.for_n_images(n)
    return image_token_count([count_tiles(width, height, per_image)] * n, tiling.tokens_per_tile)


def fits(n: int, width: int, height: int, budget: int, tiling: TilingConfig, max_side: int, min_side: int) -> bool:
    """Brute force: does any rung of the ladder hold n frames within the budget?"""
    return any(
        catalog_tokens(n, *clamp_to_grid(w, h, tiling.for_n_images(n)), tiling) <= budget
        for w, h in resolution_ladder(width, height, max_side, min_side)
    )


TILINGS = [TilingConfig(), TilingConfig(tile_size=224, max_tiles=6), TilingConfig(max_tiles=1, use_thumbnail=False)]
SIZES = [(1280, 720), (720, 1280), (640, 480), (1080, 1080), (200, 120), (1920, 800)]


@pytest.mark.parametrize("tiling", TILINGS, ids=["internvl", "small", "single"])
def test_plan_is_within_budget_exact_and_keeps_the_most_frames(tiling):
    for (width, height), n, budget in itertools.product(SIZES, (1, 3, 5, 11, 12, 40, 64, 65, 200), (600, 4000, 16384)):
        plan = plan_frames(n, width, height, token_budget=budget, tiling=tiling, max_side=1344, min_side=112)
        if plan is None:
            assert not fits(1, width, height, budget, tiling, 1344, 112)
            continue
        assert plan.image_tokens == catalog_tokens(plan.n_frames, plan.width, plan.height, tiling) <= budget
        assert plan.n_frames <= n and max(plan.width, plan.height) <= 1344
        more = [m for m in range(plan.n_frames + 1, n + 1) if fits(m, width, height, budget, tiling, 1344, 112)]
        assert not more, (width, height, n, budget, plan)  # frames were dropped only when they had to be


def test_resolution_is_lowered_before_frames_are_dropped():
    # Square 1080p frames, 3 of them: each gets a 2x2 grid + thumbnail (5 tiles) while it is
    # large (InternVL's area tie rule), one tile once small. 3 x 5 tiles do not fit, 3 x 1 do.
    tiling = TilingConfig()
    budget = 3 * (256 + 2)
    plan = plan_frames(3, 1080, 1080, token_budget=budget, tiling=tiling, max_side=1344, min_side=224)
    assert plan.n_frames == 3 and plan.tiles_per_frame == 1 and plan.image_tokens == budget
    assert 224 <= plan.width < 1080
    generous = plan_frames(3, 1080, 1080, token_budget=10 * budget, tiling=tiling, max_side=1344, min_side=224)
    assert generous.width == 896 and generous.tiles_per_frame == 5  # not shrunk when it fits; clamped to its 2x2 grid


def test_qwen2vl_default_budget_caps_frames():
    plan = plan_frames(600, 1280, 720, token_budget=16384, tiling=TilingConfig(), max_side=448, min_side=224)
    assert plan.n_frames == 16384 // 258 and plan.tiles_per_frame == 1
    assert (plan.width, plan.height) == (448, 252)
