"""Near-duplicate text: vectorised MinHash + LSH, then an exact Jaccard check.

Pipeline for a batch of texts (all numpy over the whole batch, no per-shingle Python):

1. Tokens and shingles (``filters.dedup.shingles``): words are tokenised and hashed
   on the raw UTF-8 bytes of the whole batch, and every window of ``ngram`` tokens
   is folded into a deterministic 64-bit hash with a few array passes.
2. Each document keeps its sorted unique shingle hashes (one packed sort for the
   batch): that is its exact shingle set.
3. Identical shingle sets are collapsed, so thousands of copies of one licence text
   are signed, bucketed and verified once.
4. MinHash signatures: ``h_i(x) = ((a_i * x + b_i) mod 2^64) >> 32`` on the 32-bit
   shingle fingerprint, the multiply-add-shift universal family (Dietzfelbinger
   1996). It is the datasketch recipe ``(a*x + b) mod p`` with the modulo, its most
   expensive operation, replaced by wrapping uint64 arithmetic, and it is computed
   on (chunk x num_perm) arrays with ``np.minimum.reduceat`` per document.
5. LSH banding tuned for a *lower* candidate threshold (default ``threshold - 0.25``)
   so that pairs at the real threshold are almost never missed (recall), then every
   candidate pair is checked by the exact Jaccard of the two shingle sets (precision).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from filters.dedup.jaccard_pairs import jaccard_pairs
from filters.dedup.shingles import _PRIME, _splitmix64, shingle_hashes, text_batch, unique_shingle_sets
from filters.dedup.union_find import (
    expand_group_pairs,
    group_heads,
    group_pairs,
    pairs_with_equal_keys,
    unique_pairs,
)

_MASK32 = np.uint64(0xFFFFFFFF)


@dataclass
class MinHasher:
    """Vectorised MinHash over shingle sets; ``signatures`` is an (n, num_perm) uint32 array."""

    num_perm: int = 128
    ngram: int = 5
    unit: str = "word"
    seed: int = 1
    chunk_elems: int = 1 << 17  # (shingles x num_perm) per working array: stays in cache
    a: np.ndarray = field(init=False, repr=False)
    b: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        top = np.iinfo(np.uint64).max
        self.a = rng.integers(1, top, size=self.num_perm, dtype=np.uint64, endpoint=True) | np.uint64(1)
        self.b = rng.integers(0, top, size=self.num_perm, dtype=np.uint64, endpoint=True)

    def shingle_sets(self, texts: list[str]) -> list[np.ndarray]:
        """Per text, its sorted unique shingle hashes (the exact sets Jaccard is computed on)."""
        uvals, uoff = unique_shingle_sets(texts, self.ngram, self.unit)
        return [uvals[uoff[i] : uoff[i + 1]] for i in range(len(uoff) - 1)]

    def signatures(self, texts: list[str]) -> np.ndarray:
        values, off = shingle_hashes(texts, self.ngram, self.unit)
        return self.signatures_from_hashes(values, off)

    def signatures_from_hashes(self, values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """Signatures of n documents given their concatenated shingle hashes and offsets.

        An empty document gets the all-0xFFFFFFFF signature (it never matches: LSH
        callers skip empty documents).
        """
        n = len(offsets) - 1
        sig = np.full((n, self.num_perm), 0xFFFFFFFF, dtype=np.uint32)  # hashes are < 2^32 after the shift
        if len(values) == 0:
            return sig
        x = (values >> np.uint64(32)) ^ (values & _MASK32)  # 32-bit fingerprint
        doc_of = np.repeat(np.arange(n), np.diff(offsets))
        rows = max(1, self.chunk_elems // self.num_perm)
        buf = np.empty((rows, self.num_perm), dtype=np.uint64)
        shift = np.uint64(32)
        for s in range(0, len(x), rows):
            xs = x[s : s + rows]
            h = buf[: len(xs)]
            np.multiply(xs[:, None], self.a, out=h)
            h += self.b
            h >>= shift
            d = doc_of[s : s + rows]
            seg = np.flatnonzero(np.r_[True, d[1:] != d[:-1]])
            docs = d[seg]
            sig[docs] = np.minimum(sig[docs], np.minimum.reduceat(h, seg, axis=0).astype(np.uint32))
        return sig


_SIGNATURE_BLOCK = 1 << 14  # groups signed at a time (a 8 MB signature block at num_perm=128)


def _identical_sets(uvals: np.ndarray, uoff: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group id per document (-1: empty set) and each group's first document.

    Two order-independent 64-bit fingerprints of each sorted set (sum and xor of two
    different mixes of its hashes) plus its size identify it: 128 bits, like the
    blake2b digest per set this replaces, without a Python object per document.
    """
    n = len(uoff) - 1
    sizes = np.diff(uoff)
    docs = np.flatnonzero(sizes > 0)
    group = np.full(n, -1, dtype=np.int64)
    if len(docs) == 0:
        return group, np.empty(0, dtype=np.int64)
    h1 = np.empty(len(docs), dtype=np.uint64)
    h2 = np.empty(len(docs), dtype=np.uint64)
    for s in range(0, len(docs), _SIGNATURE_BLOCK):  # a block of documents: mixes stay small
        d = docs[s : s + _SIGNATURE_BLOCK]
        lo, hi = uoff[d[0]], uoff[d[-1] + 1]
        v, starts = uvals[lo:hi], uoff[d] - lo
        h1[s : s + len(d)] = np.add.reduceat(_splitmix64(v), starts)
        h2[s : s + len(d)] = np.bitwise_xor.reduceat(_splitmix64(v ^ np.uint64(0x5851F42D4C957F2D)), starts)
    order = np.lexsort((docs, sizes[docs], h2, h1))  # equal sets adjacent, first document first
    k1, k2, k3 = h1[order], h2[order], sizes[docs][order]
    new = np.r_[True, (k1[1:] != k1[:-1]) | (k2[1:] != k2[:-1]) | (k3[1:] != k3[:-1])]
    run = np.cumsum(new) - 1  # run id in sorted order
    first_doc = docs[order][new]  # each run's first document
    rank = np.empty(len(first_doc), dtype=np.int64)
    rank[np.argsort(first_doc, kind="stable")] = np.arange(len(first_doc))  # ids by first appearance
    group[docs[order]] = rank[run]
    return group, np.sort(first_doc)


def lsh_params(num_perm: int, threshold: float) -> tuple[int, int]:
    """(bands, rows) with bands * rows <= num_perm whose S-curve best separates ``threshold``.

    Minimises the area of false positives below the threshold plus false negatives
    above it, as datasketch's ``_optimal_param`` does, by numeric integration.
    """
    s = np.linspace(0.0, 1.0, 1001)
    best, best_err = (1, num_perm), np.inf
    for r in range(1, num_perm + 1):
        b = num_perm // r
        p = 1.0 - (1.0 - s**r) ** b
        err = np.trapezoid(np.where(s < threshold, p, 1.0 - p), s)
        if err < best_err:
            best, best_err = (b, r), err
    return best


def _band_keys(sig: np.ndarray, bands: int, rows: int) -> list[np.ndarray]:
    keys = []
    for k in range(bands):
        h = np.full(len(sig), 0x84222325CBF29CE4, dtype=np.uint64)
        for c in range(k * rows, (k + 1) * rows):
            h = (h ^ sig[:, c].astype(np.uint64)) * _PRIME
        keys.append(_splitmix64(h))
    return keys


def near_duplicate_text_pairs(
    texts,
    threshold: float = 0.8,
    num_perm: int = 128,
    ngram: int = 5,
    unit: str = "word",
    candidate_threshold: float | None = None,
    seed: int = 1,
    all_pairs: bool = True,
) -> np.ndarray:
    """Index pairs (i < j) whose exact shingle Jaccard is >= ``threshold``, as (k, 2) int64.

    ``texts``: a list of str or an Arrow string array (``shingle_hashes`` reads its buffers).

    LSH (tuned for ``candidate_threshold``, default ``max(threshold - 0.25, 0.3)``)
    proposes candidates; the exact Jaccard decides. Empty texts never match.
    ``all_pairs=False`` returns only enough pairs to connect the same components.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError("threshold must be in (0, 1]")
    cand_t = max(threshold - 0.25, 0.3) if candidate_threshold is None else candidate_threshold
    hasher = MinHasher(num_perm=num_perm, ngram=ngram, unit=unit, seed=seed)
    texts = text_batch(texts)
    n = len(texts)
    if n < 2:
        return np.empty((0, 2), dtype=np.int64)

    # Exact shingle sets, and identical sets collapsed into groups (group ids in order of
    # first appearance; each group is represented by its first document's set).
    uvals, uoff = unique_shingle_sets(texts, ngram, unit)
    group, heads = _identical_sets(uvals, uoff)
    n_groups = len(heads)
    gpairs = np.empty((0, 2), dtype=np.int64)
    if n_groups >= 2 and threshold < 1.0:
        lens = (uoff[heads + 1] - uoff[heads]).astype(np.int64)
        goff = np.r_[0, np.cumsum(lens)]
        # The head documents' sets, concatenated: one boolean mask over the values (heads are
        # in document order), no per-set Python objects and no int64 index per value.
        is_head = np.zeros(len(uoff) - 1, dtype=bool)
        is_head[heads] = True
        gvals = uvals[np.repeat(is_head, np.diff(uoff))]
        del is_head
        del uvals, uoff  # only the head sets are needed from here on
        bands, rows = lsh_params(num_perm, cand_t)
        # Signatures a block of groups at a time, kept only as band keys: (bands x groups)
        # uint64 instead of the (groups x num_perm) signature matrix (1M x 128 x 4 bytes).
        keys = [np.empty(n_groups, dtype=np.uint64) for _ in range(bands)]
        for s in range(0, n_groups, _SIGNATURE_BLOCK):
            e = min(s + _SIGNATURE_BLOCK, n_groups)
            sig = hasher.signatures_from_hashes(gvals[goff[s] : goff[e]], goff[s : e + 1] - goff[s])
            for k, band in enumerate(_band_keys(sig, bands, rows)):
                keys[k][s:e] = band
        del sig
        found = []
        for k in range(bands):  # each band's keys freed once its pairs are out
            found.append(pairs_with_equal_keys(keys[k]))
            keys[k] = None
        del keys
        cand = unique_pairs(np.concatenate(found))
        # Jaccard <= min/max of the sizes: skip pairs that cannot reach the threshold.
        la, lb = lens[cand[:, 0]], lens[cand[:, 1]]
        cand = cand[np.minimum(la, lb) >= threshold * np.maximum(la, lb)]
        gpairs = cand[jaccard_pairs(gvals, goff, cand) >= threshold]
    valid = group >= 0
    within = group_pairs(group, all_pairs=all_pairs)
    if all_pairs:
        across = expand_group_pairs(gpairs, group[valid], n_groups)
        across = np.flatnonzero(valid)[across].reshape(-1, 2)
    else:
        across = group_heads(np.where(valid, group, n_groups), n_groups + 1)[gpairs].reshape(-1, 2)
    return unique_pairs(np.concatenate([within, across]))
