"""Perceptual image hash (DCT pHash) and near-duplicate search by Hamming distance.

pHash keeps the signs of the lowest image frequencies relative to their median, so it
survives re-encoding, resizing and mild colour changes, and two copies of one photo
land a few bits apart while unrelated photos differ in about half of the 64 bits.

Finding all pairs within Hamming distance ``d`` uses the pigeonhole principle: split
the 64 bits into ``d + t`` blocks; two hashes that differ in at most ``d`` bits agree
exactly on at least ``t`` blocks. Exact matches on each choice of ``t`` blocks (a sort
per choice) give the candidate pairs and a popcount of the XOR verifies them, so the
cost is O(n log n + candidates) instead of O(n^2) comparisons; ``t`` grows with n so
that the keys stay wide enough for candidates to remain few (``_key_blocks``).
"""
from __future__ import annotations

import itertools
import math
from functools import lru_cache

import numpy as np
from PIL import Image

from filters.dedup.union_find import (
    expand_group_pairs,
    group_heads,
    group_pairs,
    pairs_with_equal_keys,
    unique_pairs,
)

HASH_SIZE = 8  # 8x8 = 64 bits
IMG_SIZE = 32  # the image is reduced to 32x32 before the DCT


@lru_cache(maxsize=4)
def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix M so that ``M @ x`` is the DCT of the column x."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


def phash64(image: Image.Image) -> int:
    """The 64-bit DCT perceptual hash of an image, as an unsigned int.

    Grayscale, resize to 32x32 (Lanczos), 2-D DCT, keep the 8x8 lowest frequencies
    without the DC row and column (``[1:9, 1:9]``: the DC term is just the mean
    brightness), and set a bit where the coefficient is above their median. Bits are
    packed row-major, the first coefficient in the most significant bit.
    """
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Composite transparent images on white so the hash sees what a viewer sees.
        rgba = image.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(bg, rgba)
    gray = image.convert("L").resize((IMG_SIZE, IMG_SIZE), Image.Resampling.LANCZOS)
    x = np.asarray(gray, dtype=np.float64)
    m = _dct_matrix(IMG_SIZE)
    coeffs = (m @ x @ m.T)[1 : HASH_SIZE + 1, 1 : HASH_SIZE + 1].ravel()
    bits = coeffs > np.median(coeffs)
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def hamming(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Bitwise Hamming distance of uint64 hashes (popcount of the XOR)."""
    x = np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64))
    return np.bitwise_count(x).astype(np.int64)


def _bands(max_distance: int) -> list[tuple[int, int]]:
    """(shift, width) of ``max_distance + 1`` bands covering the 64 bits."""
    nb = max_distance + 1
    if not 1 <= nb <= 64:
        raise ValueError(f"max_distance must be in [0, 63], got {max_distance}")
    widths = [64 // nb + (1 if i < 64 % nb else 0) for i in range(nb)]
    out, shift = [], 0
    for w in widths:
        out.append((shift, w))
        shift += w
    return out


def _key_blocks(max_distance: int, n: int) -> list[tuple[tuple[int, int], ...]]:
    """Choices of bit blocks such that any two hashes within ``max_distance`` bits agree on
    all blocks of at least one choice.

    Cut 64 bits into ``max_distance + t`` blocks: differing bits touch at most
    ``max_distance`` blocks, so at least ``t`` blocks agree, and every choice of ``t``
    blocks is one key. ``t = 1`` is plain pigeonhole, but its keys (64 / (d + 1) bits,
    13 for d = 4) put ~n^2 / 2^14 random pairs in the same bucket. ``t`` grows until a
    key has about log2(n) + 6 bits: pHash sets exactly half of its bits (median split),
    so a key carries fewer bits of information than its width. Measured on 1M synthetic
    pHashes (d = 4): 21-bit keys (t = 2, 15 keys) gave 440M candidate pairs, 27-bit keys
    (t = 3, 35 keys) 72M, 32-bit keys (t = 4, 70 keys) 20M for twice the sorts.
    """
    _bands(max_distance)  # validates
    want = max(1, int(n).bit_length() + 6)
    t = 1
    while 64 * t // (max_distance + t) < want and max_distance + t < 64 and math.comb(max_distance + t + 1, t + 1) <= 256:
        t += 1
    return list(itertools.combinations(_bands(max_distance + t - 1), t))


def _close_pairs_on_key(uniq: np.ndarray, blocks: tuple[tuple[int, int], ...], max_distance: int) -> np.ndarray:
    """Pairs (i < j) of ``uniq`` equal on ``blocks`` and within ``max_distance`` bits.

    Candidates are verified as they are generated (``pairs_with_equal_keys(keep=...)``),
    so memory is O(n), not O(candidates): with tens of millions of candidates per key
    the pair arrays alone would be gigabytes.
    """
    key = np.zeros(len(uniq), dtype=np.uint64)
    width_sum = 0
    for shift, width in blocks:  # the chosen blocks packed side by side: a compact key
        key |= ((uniq >> np.uint64(shift)) & np.uint64((1 << width) - 1)) << np.uint64(width_sum)
        width_sum += width
    return pairs_with_equal_keys(key, keep=lambda a, b: hamming(uniq[a], uniq[b]) <= max_distance,
                                 key_bits=width_sum)


def near_duplicate_image_pairs(
    hashes: np.ndarray, max_distance: int = 4, all_pairs: bool = True
) -> np.ndarray:
    """Index pairs (i < j) of hashes within ``max_distance`` bits, as (k, 2) int64.

    Identical hashes are collapsed first, so 10,000 copies of one blank image cost one
    sort, not 50M candidate checks. ``all_pairs=False`` returns only enough pairs to
    connect the same components (stars inside identical groups, one edge per close
    distinct-hash pair), which is what clustering needs.
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    if hashes.ndim != 1:
        raise ValueError("hashes must be a 1-D uint64 array")
    if len(hashes) < 2:
        return np.empty((0, 2), dtype=np.int64)
    uniq, inverse = np.unique(hashes, return_inverse=True)
    inverse = inverse.ravel()

    # Close pairs among distinct hashes: exact match on one key, then verify.
    found = [_close_pairs_on_key(uniq, blocks, max_distance) for blocks in _key_blocks(max_distance, len(uniq))]
    upairs = unique_pairs(np.concatenate(found))

    # Members of one distinct hash are duplicates of each other (distance 0) ...
    within = group_pairs(inverse, all_pairs=all_pairs)
    if not all_pairs:
        # ... and one edge per close pair of distinct hashes keeps components intact.
        across = group_heads(inverse, len(uniq))[upairs].reshape(-1, 2)
        return unique_pairs(np.concatenate([within, across]))
    # ... and every member of one close hash pairs with every member of the other.
    across = expand_group_pairs(upairs, inverse, len(uniq))
    return unique_pairs(np.concatenate([within, across]))

