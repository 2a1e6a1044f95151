"""Batched exact Jaccard and pair de-duplication give exactly the per-pair results."""
from __future__ import annotations

import numpy as np

from filters.dedup.jaccard_pairs import SMALL, jaccard_pairs
from filters.dedup.minhash import near_duplicate_text_pairs
from filters.dedup.shingles import jaccard
from filters.dedup.union_find import unique_pairs


def random_sets(n: int, seed: int = 0):
    """Sorted unique uint64 sets sharing elements (so Jaccard values spread over [0, 1])."""
    rng = np.random.default_rng(seed)
    pool = rng.integers(0, 2**63, 60, dtype=np.uint64)
    sets = []
    for i in range(n):
        size = [0, 1, 3, 5, SMALL, SMALL + 1, 40][i % 7]
        sets.append(np.unique(rng.choice(pool, size=size, replace=False)))
    offsets = np.r_[0, np.cumsum([len(s) for s in sets])]
    return np.concatenate(sets), offsets, sets


def test_batched_jaccard_equals_the_per_pair_one():
    values, offsets, sets = random_sets(70)
    rng = np.random.default_rng(1)
    pairs = rng.integers(0, len(sets), (3000, 2))
    got = jaccard_pairs(values, offsets, pairs)
    want = np.array([jaccard(sets[i], sets[j]) for i, j in pairs])
    assert np.array_equal(got, want)  # bit-identical: the threshold test cannot flip
    assert (want > 0.5).sum() > 20 and (want == 0).sum() > 20  # the sample covers both sides


def test_template_captions_are_checked_exactly_and_fast():
    texts = [f"photo {i}: a synthetic scene with colour fields and grain" for i in range(400)]
    texts += ["photo 7: a synthetic scene with colour fields and grain today"] * 2
    pairs = near_duplicate_text_pairs(texts, threshold=0.6, all_pairs=True)
    # Only the two identical extra captions and "photo 7" (Jaccard 6/7) are near-duplicates.
    assert sorted(map(tuple, pairs.tolist())) == [(7, 400), (7, 401), (400, 401)]


def test_unique_pairs_orders_and_dedups_like_a_row_unique():
    rng = np.random.default_rng(2)
    pairs = rng.integers(0, 50, (5000, 2))
    lo, hi = pairs.min(axis=1), pairs.max(axis=1)
    want = np.unique(np.stack([lo, hi], axis=1)[lo != hi], axis=0)
    assert np.array_equal(unique_pairs(pairs), want)
    assert unique_pairs(np.array([[3, 3]])).shape == (0, 2)


def test_sorted_unique_and_unique_pairs_match_numpy():
    from filters.dedup.union_find import sorted_unique, unique_pairs

    rng = np.random.default_rng(3)
    for n in (0, 1, 2, 17, 5000):
        values = rng.integers(-50, 50, size=n)
        assert np.array_equal(sorted_unique(values), np.unique(values))
        pairs = rng.integers(0, 40, size=(n, 2))
        expected = np.unique(np.sort(pairs, axis=1)[pairs[:, 0] != pairs[:, 1]], axis=0).reshape(-1, 2)
        assert np.array_equal(unique_pairs(pairs), expected)
