"""InternVL dynamic-resolution tiling: one image becomes a grid of square tiles.

An image is matched to the (cols, rows) grid whose aspect ratio is closest to its
own, among all grids of ``min_tiles..max_tiles`` tiles; it is resized to exactly
``tile_size * cols`` by ``tile_size * rows`` and cut into ``cols * rows`` tiles,
plus one global thumbnail when there is more than one tile. Each tile then costs
``tokens_per_tile`` image tokens in the language model (256 for InternVL's
448px / patch 14 / pixel-shuffle 0.5).

The shard step (token budgets, packing) and the trainer (the actual pixels) both
call this module, so the tile count a sample is budgeted with is by construction
the number of tiles it is trained on. The grid choice reproduces InternVL's
``find_closest_aspect_ratio`` exactly, including its ordering of candidate grids
and its tie rule, so counts also agree with checkpoints trained by InternVL code.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

from PIL import Image


@dataclass(frozen=True)
class TilingConfig:
    tile_size: int = 448
    min_tiles: int = 1
    max_tiles: int = 12
    use_thumbnail: bool = True
    patch_size: int = 14  # ViT patch size
    downsample_ratio: float = 0.5  # pixel shuffle: 0.5 keeps 1/4 of the patch tokens

    def __post_init__(self) -> None:
        for name in ("tile_size", "min_tiles", "max_tiles", "patch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"TilingConfig.{name} must be a positive int, got {value!r}")
        if self.min_tiles > self.max_tiles:
            raise ValueError(
                f"TilingConfig.min_tiles ({self.min_tiles}) must be <= max_tiles ({self.max_tiles})"
            )
        if self.tile_size % self.patch_size != 0:
            raise ValueError(
                f"TilingConfig.tile_size ({self.tile_size}) must be a multiple of "
                f"patch_size ({self.patch_size})"
            )
        if not 0 < self.downsample_ratio <= 1:
            raise ValueError(
                f"TilingConfig.downsample_ratio must be in (0, 1], got {self.downsample_ratio!r}"
            )

    @property
    def tokens_per_tile(self) -> int:
        """LLM tokens one tile costs: ViT patches per tile, thinned by pixel shuffle.

        Computed as InternVL computes ``num_image_token``:
        ``int((image_size // patch_size) ** 2 * downsample_ratio ** 2)``.
        """
        return int((self.tile_size // self.patch_size) ** 2 * self.downsample_ratio**2)

    def for_n_images(self, n_images: int) -> "TilingConfig":
        """The config for each image of a multi-image sample.

        InternVL splits the tile budget between the images of one sample:
        ``max_num = max(1, max_dynamic_patch // num_image)``. ``min_tiles`` is
        clamped so the config stays valid.
        """
        if isinstance(n_images, bool) or not isinstance(n_images, int) or n_images < 1:
            raise ValueError(f"n_images must be a positive int, got {n_images!r}")
        max_tiles = max(1, self.max_tiles // n_images)
        return replace(self, max_tiles=max_tiles, min_tiles=min(self.min_tiles, max_tiles))


def target_ratios(min_tiles: int, max_tiles: int) -> list[tuple[int, int]]:
    """All (cols, rows) grids with min_tiles <= cols*rows <= max_tiles, fewest tiles first.

    Built exactly as InternVL builds it: a set sorted (stably) by tile count. Grids
    with the same tile count keep the set's iteration order, which for small int
    tuples is deterministic in CPython; the tie rule of ``choose_grid`` can depend on
    that order, so it is kept rather than "tidied" into a total order.
    """
    return list(_target_ratios(min_tiles, max_tiles))


# Cached: choose_grid runs once per image in the shard step, and the construction
# loops over O(max_tiles**3) candidates.
@lru_cache(maxsize=64)
def _target_ratios(min_tiles: int, max_tiles: int) -> tuple[tuple[int, int], ...]:
    ratios = set(
        (i, j)
        for n in range(min_tiles, max_tiles + 1)
        for i in range(1, n + 1)
        for j in range(1, n + 1)
        if min_tiles <= i * j <= max_tiles
    )
    return tuple(sorted(ratios, key=lambda r: r[0] * r[1]))


def choose_grid(width: int, height: int, config: TilingConfig) -> tuple[int, int]:
    """The (cols, rows) grid InternVL would tile a ``width`` x ``height`` image into.

    The grid whose cols/rows is nearest to width/height wins. On an exact tie of the
    ratio difference (e.g. a square image: 1x1, 2x2 and 3x3 all match perfectly), a
    later, larger grid replaces the current best only if the image has more than
    half the pixels that grid would hold (``area > 0.5 * tile_size**2 * cols * rows``):
    big images get more tiles, small ones are not blown up.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    aspect = width / height
    area = width * height
    best, best_diff = (1, 1), float("inf")
    for cols, rows in _target_ratios(config.min_tiles, config.max_tiles):
        diff = abs(aspect - cols / rows)
        if diff < best_diff:
            best, best_diff = (cols, rows), diff
        elif diff == best_diff and area > 0.5 * config.tile_size**2 * cols * rows:
            best = (cols, rows)
    return best


def count_tiles(width: int, height: int, config: TilingConfig) -> int:
    """Number of tiles ``tile_image`` returns for this size, thumbnail included."""
    cols, rows = choose_grid(width, height, config)
    n = cols * rows
    # The thumbnail would duplicate a single tile, so InternVL adds it only for grids.
    return n + 1 if config.use_thumbnail and n != 1 else n


def image_tokens(width: int, height: int, config: TilingConfig) -> int:
    """LLM tokens the image costs: tiles (thumbnail included) times tokens per tile."""
    return count_tiles(width, height, config) * config.tokens_per_tile


def tile_image(image: Image.Image, config: TilingConfig) -> list[Image.Image]:
    """Cut ``image`` into its tiles, row-major, thumbnail last.

    Every returned image is ``tile_size`` x ``tile_size``; the mode is kept (decode
    images with ``pipeline.image_io`` first to get RGB).
    """
    width, height = image.size
    cols, rows = choose_grid(width, height, config)
    size = config.tile_size
    # Explicit BICUBIC: what PIL's resize defaults to for RGB, which InternVL relies on.
    resized = image.resize((size * cols, size * rows), Image.Resampling.BICUBIC)
    tiles = [
        resized.crop((c * size, r * size, (c + 1) * size, (r + 1) * size))
        for r in range(rows)
        for c in range(cols)
    ]
    if config.use_thumbnail and len(tiles) != 1:
        tiles.append(image.resize((size, size), Image.Resampling.BICUBIC))
    return tiles
