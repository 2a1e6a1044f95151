"""pipeline.tiling against a transcription of InternVL's original code.

The reference functions below are InternVL's ``find_closest_aspect_ratio`` and
``dynamic_preprocess`` (internvl_chat/internvl/train/dataset.py) copied with only
the names changed, so the comparison is against an independent code path, not a
re-derivation of ours.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from pipeline.tiling import (
    TilingConfig,
    choose_grid,
    count_tiles,
    image_tokens,
    target_ratios,
    tile_image,
)


# --- InternVL reference (verbatim logic) -------------------------------------------
def ref_find_closest_aspect_ratio(aspect_ratio, target_ratios, width, height, image_size):
    best_ratio_diff = float("inf")
    best_ratio = (1, 1)
    area = width * height
    for ratio in target_ratios:
        target_aspect_ratio = ratio[0] / ratio[1]
        ratio_diff = abs(aspect_ratio - target_aspect_ratio)
        if ratio_diff < best_ratio_diff:
            best_ratio_diff = ratio_diff
            best_ratio = ratio
        elif ratio_diff == best_ratio_diff:
            if area > 0.5 * image_size * image_size * ratio[0] * ratio[1]:
                best_ratio = ratio
    return best_ratio


def ref_target_ratios(min_num, max_num):
    target_ratios = set(
        (i, j)
        for n in range(min_num, max_num + 1)
        for i in range(1, n + 1)
        for j in range(1, n + 1)
        if i * j <= max_num and i * j >= min_num
    )
    return sorted(target_ratios, key=lambda x: x[0] * x[1])


def ref_grid(orig_width, orig_height, min_num, max_num, image_size):
    aspect_ratio = orig_width / orig_height
    return ref_find_closest_aspect_ratio(
        aspect_ratio, ref_target_ratios(min_num, max_num), orig_width, orig_height, image_size
    )


def ref_dynamic_preprocess(image, min_num=1, max_num=12, image_size=448, use_thumbnail=False):
    orig_width, orig_height = image.size
    target_aspect_ratio = ref_grid(orig_width, orig_height, min_num, max_num, image_size)
    target_width = image_size * target_aspect_ratio[0]
    target_height = image_size * target_aspect_ratio[1]
    blocks = target_aspect_ratio[0] * target_aspect_ratio[1]
    resized_img = image.resize((target_width, target_height))
    processed_images = []
    for i in range(blocks):
        box = (
            (i % (target_width // image_size)) * image_size,
            (i // (target_width // image_size)) * image_size,
            ((i % (target_width // image_size)) + 1) * image_size,
            ((i // (target_width // image_size)) + 1) * image_size,
        )
        processed_images.append(resized_img.crop(box))
    assert len(processed_images) == blocks
    if use_thumbnail and len(processed_images) != 1:
        processed_images.append(image.resize((image_size, image_size)))
    return processed_images


def ref_count(width, height, min_num, max_num, image_size, use_thumbnail):
    cols, rows = ref_grid(width, height, min_num, max_num, image_size)
    blocks = cols * rows
    return blocks + 1 if use_thumbnail and blocks != 1 else blocks


# --- grid choice vs. reference ---------------------------------------------------------
def test_target_ratios_match_internvl_order():
    for lo, hi in [(1, 12), (1, 6), (2, 9), (4, 4), (1, 1), (3, 40)]:
        assert target_ratios(lo, hi) == ref_target_ratios(lo, hi)
    ratios = target_ratios(1, 12)
    assert ratios[0] == (1, 1)
    assert all(1 <= c * r <= 12 for c, r in ratios)
    assert len(ratios) == len(set(ratios))


SIZES = [1, 2, 7, 13, 100, 223, 224, 317, 448, 633, 634, 672, 896, 1000, 1344, 1920, 4000, 30000]


@pytest.mark.parametrize("min_tiles,max_tiles", [(1, 12), (1, 6), (1, 1), (2, 8), (4, 4), (1, 40)])
def test_grid_of_sizes_matches_reference(min_tiles, max_tiles):
    for tile_size, use_thumbnail in [(448, True), (224, False)]:
        cfg = TilingConfig(
            tile_size=tile_size, min_tiles=min_tiles, max_tiles=max_tiles, use_thumbnail=use_thumbnail
        )
        for w, h in itertools.product(SIZES, SIZES):
            want = ref_grid(w, h, min_tiles, max_tiles, tile_size)
            assert choose_grid(w, h, cfg) == want, (w, h, cfg)
            assert count_tiles(w, h, cfg) == ref_count(
                w, h, min_tiles, max_tiles, tile_size, use_thumbnail
            )


@settings(max_examples=300, deadline=None)
@given(
    w=st.integers(1, 20_000),
    h=st.integers(1, 20_000),
    min_tiles=st.integers(1, 6),
    extra=st.integers(0, 18),
    tile_size=st.sampled_from([224, 448, 28]),
    use_thumbnail=st.booleans(),
)
def test_random_sizes_match_reference(w, h, min_tiles, extra, tile_size, use_thumbnail):
    max_tiles = min_tiles + extra
    cfg = TilingConfig(tile_size, min_tiles, max_tiles, use_thumbnail)
    assert choose_grid(w, h, cfg) == ref_grid(w, h, min_tiles, max_tiles, tile_size)
    assert count_tiles(w, h, cfg) == ref_count(w, h, min_tiles, max_tiles, tile_size, use_thumbnail)


@settings(max_examples=300, deadline=None)
@given(
    cols=st.integers(1, 8),
    rows=st.integers(1, 8),
    scale=st.integers(1, 2000),
    max_tiles=st.integers(1, 16),
)
def test_exact_ratio_ties_match_reference(cols, rows, scale, max_tiles):
    # Sizes that are exact multiples of a grid hit the tie branch (equal ratio
    # differences), which random sizes almost never do.
    w, h = cols * scale, rows * scale
    cfg = TilingConfig(max_tiles=max_tiles)
    assert choose_grid(w, h, cfg) == ref_grid(w, h, 1, max_tiles, 448)


@settings(max_examples=300, deadline=None)
@given(
    w=st.integers(1, 120),
    h=st.integers(1, 120),
    tile_size=st.integers(1, 12),
    min_tiles=st.integers(1, 4),
    extra=st.integers(0, 10),
)
def test_small_tiles_match_reference(w, h, tile_size, min_tiles, extra):
    # patch_size=1 allows tiny tiles, where the tie threshold 0.5*tile**2*cols*rows is
    # often an integer that an image area can equal exactly (the strict '>' matters).
    max_tiles = min_tiles + extra
    cfg = TilingConfig(tile_size, min_tiles, max_tiles, patch_size=1)
    assert choose_grid(w, h, cfg) == ref_grid(w, h, min_tiles, max_tiles, tile_size)


# --- the tie rule, worked by hand -------------------------------------------------------
# A square image matches 1x1, 2x2 and 3x3 equally well (ratio difference 0), so the
# tie rule decides: a larger grid c x r replaces the best when
# area > 0.5 * 448**2 * c * r, i.e. area > 100352 * c * r.
#   2x2 needs area > 401408 (side > 633.57); 3x3 needs area > 903168 (side > 950.35).
@pytest.mark.parametrize(
    "side,grid,n_tiles",
    [
        (448, (1, 1), 1),  # 200704 <= 401408: stays 1x1, and a single tile gets no thumbnail
        (633, (1, 1), 1),  # 400689 <= 401408: just below the 2x2 threshold
        (634, (2, 2), 5),  # 401956 > 401408: 2x2, plus thumbnail
        (800, (2, 2), 5),  # 640000: above 2x2's threshold, below 3x3's 903168
        (950, (2, 2), 5),  # 902500 <= 903168
        (951, (3, 3), 10),  # 904401 > 903168: 3x3
        (1000, (3, 3), 10),  # 1e6 > 903168: 3x3 (not 2x2: the later tie wins too)
        (5000, (3, 3), 10),  # 4x4 = 16 tiles exceeds max_tiles=12, so 3x3 is the largest
    ],
)
def test_square_tie_rule(side, grid, n_tiles):
    cfg = TilingConfig()
    assert choose_grid(side, side, cfg) == grid
    assert count_tiles(side, side, cfg) == n_tiles


def test_non_square_tie_rule():
    # Aspect 1.5 with max_tiles=2: 1x1 (ratio 1) and 2x1 (ratio 2) are both 0.5 away.
    # 2x1 wins only if area > 0.5 * 448**2 * 2 = 200704.
    cfg = TilingConfig(max_tiles=2)
    assert choose_grid(300, 200, cfg) == (1, 1)  # area 60000
    assert choose_grid(672, 448, cfg) == (2, 1)  # area 301056
    # With the default budget 3x2 matches 1.5 exactly, whatever the size.
    assert choose_grid(300, 200, TilingConfig()) == (3, 2)


def test_tie_threshold_is_strict():
    # 9x8 (aspect 1.125) is 0.125 from 1x1 and from 2x2. With tile 6 the 2x2 threshold
    # is 0.5 * 36 * 4 = 72 = 9 * 8: equal is not more, so 1x1 stays.
    cfg = TilingConfig(tile_size=6, patch_size=1, max_tiles=4)
    assert choose_grid(9, 8, cfg) == (1, 1)
    # 10x8 (aspect 1.25) ties 1x1 and 2x2 at 0.25, and area 80 > 72: 2x2.
    assert choose_grid(10, 8, cfg) == (2, 2)


def test_tie_between_equal_tile_counts_follows_internvl_order():
    # With exactly 2 tiles the candidates are 1x2 and 2x1, in InternVL's set order
    # (1, 2) then (2, 1). A 5:4 image is 0.75 from both. The later (2, 1) takes the
    # tie only when area > 0.5 * 448**2 * 2 = 200704; otherwise the earlier, portrait
    # grid is kept even though the image is landscape - that is what InternVL does.
    cfg = TilingConfig(min_tiles=2, max_tiles=2)
    assert target_ratios(2, 2) == [(1, 2), (2, 1)]
    assert choose_grid(500, 400, cfg) == (1, 2)  # area 200000
    assert choose_grid(1000, 800, cfg) == (2, 1)  # area 800000


def test_extreme_and_tiny_sizes():
    cfg = TilingConfig()
    assert choose_grid(100_000, 10, cfg) == (12, 1)  # widest grid available
    assert choose_grid(10, 100_000, cfg) == (1, 12)
    assert count_tiles(100_000, 10, cfg) == 13
    assert choose_grid(1, 1, cfg) == (1, 1)
    assert count_tiles(1, 1, cfg) == 1
    assert choose_grid(2, 1, cfg) == (2, 1)  # area 2 never wins a tie, but 2x1 is exact
    with pytest.raises(ValueError):
        choose_grid(0, 10, cfg)


def test_min_tiles_forces_a_grid():
    cfg = TilingConfig(min_tiles=4, max_tiles=4)
    # Only 4-tile grids are candidates: 1x4, 2x2, 4x1.
    assert choose_grid(10, 10, cfg) == (2, 2)
    assert choose_grid(1000, 100, cfg) == (4, 1)
    assert count_tiles(10, 10, cfg) == 5


# --- pixels -------------------------------------------------------------------------------
def _noise(w, h, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


@pytest.mark.parametrize("w,h", [(60, 20), (20, 60), (28, 28), (50, 50), (90, 31), (5, 300), (1, 1)])
@pytest.mark.parametrize("use_thumbnail", [True, False])
def test_tile_image_matches_reference_pixels(w, h, use_thumbnail):
    cfg = TilingConfig(tile_size=28, max_tiles=12, use_thumbnail=use_thumbnail)
    img = _noise(w, h)
    tiles = tile_image(img, cfg)
    ref = ref_dynamic_preprocess(img, 1, 12, 28, use_thumbnail)
    assert len(tiles) == len(ref) == count_tiles(w, h, cfg)
    for ours, theirs in zip(tiles, ref):
        assert ours.size == (28, 28)
        assert np.array_equal(np.asarray(ours), np.asarray(theirs))


def test_tile_image_order_is_row_major_and_thumbnail_last():
    # A 2x1-tile image whose left half is black and right half white: after tiling,
    # tile 0 is the left (black) half, tile 1 the right (white), then the thumbnail.
    cfg = TilingConfig(tile_size=28)
    img = Image.new("RGB", (56, 28), (0, 0, 0))
    img.paste((255, 255, 255), (28, 0, 56, 28))
    tiles = tile_image(img, cfg)
    assert choose_grid(56, 28, cfg) == (2, 1)
    assert len(tiles) == 3
    assert np.asarray(tiles[0]).max() == 0
    assert np.asarray(tiles[1]).min() == 255
    thumb = np.asarray(tiles[2])
    assert thumb[:, :10].max() < 30 and thumb[:, -10:].min() > 225


def test_tile_image_default_size():
    tiles = tile_image(_noise(1000, 500), TilingConfig())
    assert len(tiles) == count_tiles(1000, 500, TilingConfig())
    assert all(t.size == (448, 448) for t in tiles)


# --- tokens and config -------------------------------------------------------------------
def test_tokens():
    cfg = TilingConfig()
    assert cfg.tokens_per_tile == 256  # (448/14)**2 = 1024 patches, pixel shuffle keeps 1/4
    assert TilingConfig(tile_size=224).tokens_per_tile == 64
    assert TilingConfig(downsample_ratio=1.0).tokens_per_tile == 1024
    assert image_tokens(1000, 1000, cfg) == 10 * 256
    assert image_tokens(448, 448, cfg) == 256


def test_for_n_images():
    cfg = TilingConfig(max_tiles=12)
    assert cfg.for_n_images(1).max_tiles == 12
    assert cfg.for_n_images(2).max_tiles == 6
    assert cfg.for_n_images(5).max_tiles == 2
    assert cfg.for_n_images(13).max_tiles == 1  # never zero
    clamped = TilingConfig(min_tiles=4, max_tiles=12).for_n_images(4)
    assert (clamped.min_tiles, clamped.max_tiles) == (3, 3)
    # Other fields carry over; the original is unchanged (frozen).
    assert cfg.for_n_images(3).tile_size == 448 and cfg.max_tiles == 12
    assert count_tiles(1000, 1000, cfg.for_n_images(3)) == 5  # 4 tiles max: 2x2 + thumbnail
    with pytest.raises(ValueError):
        cfg.for_n_images(0)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"tile_size": 0}, "tile_size"),
        ({"min_tiles": 0}, "min_tiles"),
        ({"max_tiles": -1}, "max_tiles"),
        ({"patch_size": 0}, "patch_size"),
        ({"min_tiles": 5, "max_tiles": 4}, "min_tiles"),
        ({"tile_size": 450}, "multiple of patch_size"),
        ({"downsample_ratio": 0.0}, "downsample_ratio"),
        ({"downsample_ratio": 1.5}, "downsample_ratio"),
    ],
)
def test_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TilingConfig(**kwargs)
