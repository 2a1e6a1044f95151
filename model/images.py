"""Tiles to the pixel tensor the vision tower takes (what InternVL's image processor does).

Tiling itself is ``pipeline.tiling.tile_image``, the function the shard step counted
tiles with. Here the tiles are only scaled to [0, 1] and normalised with the ImageNet
mean and std InternViT was trained with.
"""
from __future__ import annotations

import io
import random

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def tiles_to_tensor(tiles: list[Image.Image]) -> torch.Tensor:
    """[n, 3, H, W] float32, normalised."""
    array = np.stack([np.asarray(t.convert("RGB"), dtype=np.float32) for t in tiles]) / 255.0
    array = (array - np.array(IMAGENET_MEAN, dtype=np.float32)) / np.array(IMAGENET_STD, dtype=np.float32)
    return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()


def jpeg_recompress(image: Image.Image, quality_range: tuple[int, int], rng: random.Random) -> Image.Image:
    """Re-encode as JPEG at a random quality (augmentation against compression artefacts).

    The size is unchanged, so the tile count the shard step budgeted still holds.
    """
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=rng.randint(*quality_range))
    buf.seek(0)
    return Image.open(buf).convert("RGB")
