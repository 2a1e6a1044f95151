"""Exact Jaccard of many candidate pairs of shingle sets at once.

LSH proposes candidate pairs; each must be checked exactly. Short texts (captions:
a handful of shingles) from a template all collide in LSH (a 2000-caption URL list
gave 1M candidates), and a Python call per pair cost ~7 us. Pairs of small sets are
checked here as padded matrices (every element of one set against every element of
the other, in numpy); pairs with a large set keep the per-pair sorted search.
"""
from __future__ import annotations

import numpy as np

from filters.dedup.shingles import jaccard
from filters.dedup.union_find import sorted_unique

SMALL = 16  # sets up to this many shingles are compared as a padded matrix
_BLOCK_CELLS = 1 << 24  # pairs per block x SMALL x SMALL booleans (16 MB)


def jaccard_pairs(values: np.ndarray, offsets: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Jaccard of sets ``values[offsets[i]:offsets[i+1]]`` (sorted, unique) for each (i, j) row."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    offsets = np.asarray(offsets, dtype=np.int64)
    out = np.zeros(len(pairs), dtype=np.float64)
    if not len(pairs):
        return out
    lens = np.diff(offsets)
    la, lb = lens[pairs[:, 0]], lens[pairs[:, 1]]
    small = (np.maximum(la, lb) <= SMALL) & (np.minimum(la, lb) > 0)
    for k in np.flatnonzero(~small):  # long documents: one sorted search per pair
        i, j = pairs[k]
        out[k] = jaccard(values[offsets[i] : offsets[i + 1]], values[offsets[j] : offsets[j + 1]])
    idx = np.flatnonzero(small)
    if not len(idx):
        return out
    # The sets involved, padded to SMALL columns; ``valid`` marks real elements.
    sets = sorted_unique(pairs[idx])
    width = int(lens[sets].max())
    col = np.arange(width)
    valid = col[None, :] < lens[sets][:, None]
    matrix = np.zeros((len(sets), width), dtype=values.dtype)
    matrix[valid] = values[(offsets[sets][:, None] + col[None, :])[valid]]
    row = np.searchsorted(sets, pairs[idx])
    block = max(1, _BLOCK_CELLS // (width * width))
    for s in range(0, len(idx), block):
        a, b = row[s : s + block, 0], row[s : s + block, 1]
        same = (matrix[a][:, :, None] == matrix[b][:, None, :]) & valid[a][:, :, None] & valid[b][:, None, :]
        inter = same.sum(axis=(1, 2))  # elements are unique within a set: each match counts once
        union = lens[sets[a]] + lens[sets[b]] - inter
        out[idx[s : s + block]] = inter / union
    return out
