"""Semantic dedup (SemDeDup style): k-means on unit embeddings, then exact cosine within clusters.

Near-duplicate images (re-encoded, resized, slightly cropped) have nearly the same
CLIP embedding, so they fall in the same k-means cluster; comparing only cluster
members makes the all-pairs problem ``sum(m_c^2)`` instead of ``n^2``. Pairs with
cosine >= ``threshold`` are duplicates.

Out of core: nothing here needs all embeddings in one process. ``semantic_pairs_from_parts``
(1) samples up to ``fit_sample`` rows across parts and fits spherical k-means on that
sample, (2) assigns every part to its ``n_assign`` nearest centroids (two by default:
a near-duplicate pair split by a cluster border still meets in one) and spills
(id, cluster, emb) into bucket files, one bucket holding many whole clusters, (3)
compares members per bucket. Steps 1-3 are independent per part / per bucket: pass a ``map_fn`` (e.g. Ray
tasks) to spread them; spill files go through fsspec, so a shared URI works on a cluster.
"""
from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from pipeline import storage


@dataclass
class SemDedupConfig:
    threshold: float = 0.95  # cosine similarity at or above which two samples are duplicates
    n_clusters: int = 0  # 0: about one cluster per `cluster_size` samples
    cluster_size: int = 1000  # target members per cluster when n_clusters is 0
    iters: int = 25  # Lloyd iterations on the fit sample (stops early when stable)
    fit_sample: int = 100_000  # rows k-means is fitted on; the rest are only assigned
    n_assign: int = 2  # clusters each row joins: 2 catches near duplicates split by a cluster border
    seed: int = 0
    block: int = 2048  # rows per similarity block: bounds memory to block x cluster members

    def clusters_for(self, n: int) -> int:
        if self.n_clusters:
            return max(1, min(self.n_clusters, n))
        # k-means needs enough sample points per centroid to place it: at least ~20.
        return max(1, min(math.ceil(n / self.cluster_size), n, self.fit_sample // 20))


def normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def nearest_centroid(x: np.ndarray, centroids: np.ndarray, block: int = 8192) -> np.ndarray:
    out = np.empty(len(x), dtype=np.int64)
    for i in range(0, len(x), block):
        out[i : i + block] = np.argmax(x[i : i + block] @ centroids.T, axis=1)
    return out


def nearest_centroids(x: np.ndarray, centroids: np.ndarray, n: int, block: int = 8192) -> np.ndarray:
    """(len(x), n) ids of each row's n most similar centroids (n clipped to the centroid count)."""
    n = min(n, len(centroids))
    if n == 1:
        return nearest_centroid(x, centroids, block)[:, None]
    out = np.empty((len(x), n), dtype=np.int64)
    for i in range(0, len(x), block):
        out[i : i + block] = np.argpartition(-(x[i : i + block] @ centroids.T), n - 1, axis=1)[:, :n]
    return out


def multi_cluster_pairs(x: np.ndarray, labels: np.ndarray, threshold: float, block: int = 2048) -> np.ndarray:
    """Like ``cluster_pairs`` with (n, a) labels: each row sits in ``a`` clusters; pairs unique."""
    rows = np.repeat(np.arange(len(x)), labels.shape[1])
    pairs = cluster_pairs(x[rows], labels.reshape(-1), threshold, block)
    return np.unique(np.sort(rows[pairs], axis=1), axis=0) if len(pairs) else pairs


def fit_kmeans(sample: np.ndarray, k: int, iters: int = 25, seed: int = 0) -> np.ndarray:
    """Spherical k-means (cosine) on ``sample``: unit centroids, (k, d) float32."""
    x = normalize(sample)
    rng = np.random.default_rng(seed)
    k = min(k, len(x))
    if len(x) * k <= 50_000_000:
        centroids = _kmeans_pp(x, k, rng)
    else:  # k-means++ costs n*k*d; at scale random seeds are enough for a partitioning device
        centroids = x[rng.choice(len(x), size=k, replace=False)].copy()
    labels = None
    for _ in range(iters):
        new = nearest_centroid(x, centroids)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        sums = np.zeros_like(centroids)
        np.add.at(sums, labels, x)
        filled = np.linalg.norm(sums, axis=1) > 0  # an empty cluster keeps its old centroid
        centroids[filled] = normalize(sums[filled])
    return centroids


def _kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: each new centroid drawn with probability ~ squared distance to the nearest."""
    chosen = [int(rng.integers(len(x)))]
    d2 = np.maximum(2.0 - 2.0 * (x @ x[chosen[0]]), 0.0)  # squared distance of unit vectors
    for _ in range(1, k):
        total = d2.sum()
        i = int(rng.choice(len(x), p=d2 / total)) if total > 0 else int(rng.integers(len(x)))
        chosen.append(i)
        d2 = np.minimum(d2, np.maximum(2.0 - 2.0 * (x @ x[i]), 0.0))
    return x[chosen].copy()


def pairs_within(x: np.ndarray, threshold: float, block: int = 2048) -> np.ndarray:
    """All (i, j), i < j, with x_i . x_j >= threshold, for unit rows ``x``."""
    out = []
    for i in range(0, len(x), block):
        sims = x[i : i + block] @ x[i:].T  # only columns >= i: the upper triangle
        a, b = np.nonzero(sims >= threshold)
        keep = b > a  # b is relative to column i, a to row i: j > i means b > a
        out.append(np.stack([a[keep] + i, b[keep] + i], axis=1))
    return np.concatenate(out).astype(np.int64) if out else np.empty((0, 2), np.int64)


def cluster_pairs(x: np.ndarray, labels: np.ndarray, threshold: float, block: int = 2048) -> np.ndarray:
    """Duplicate pairs (row indices) comparing only rows with the same cluster label."""
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.r_[True, labels[order][1:] != labels[order][:-1], True])
    out = [np.empty((0, 2), np.int64)]
    for s, e in zip(bounds[:-1], bounds[1:]):
        if e - s > 1:
            members = order[s:e]
            out.append(members[pairs_within(x[members], threshold, block)])
    pairs = np.concatenate(out)
    return np.sort(pairs, axis=1) if len(pairs) else pairs


def semantic_pairs(emb: np.ndarray, config: SemDedupConfig | None = None) -> np.ndarray:
    """In-memory convenience: duplicate pairs (i < j) of the rows of ``emb``."""
    config = config or SemDedupConfig()
    x = normalize(emb)
    if len(x) < 2:
        return np.empty((0, 2), np.int64)
    rng = np.random.default_rng(config.seed)
    fit = x if len(x) <= config.fit_sample else x[rng.choice(len(x), config.fit_sample, replace=False)]
    centroids = fit_kmeans(fit, config.clusters_for(len(x)), config.iters, config.seed)
    labels = nearest_centroids(x, centroids, config.n_assign)
    return multi_cluster_pairs(x, labels, config.threshold, config.block)


# ---------------------------------------------------------------- out of core

ReadPart = Callable[[str], tuple[np.ndarray, np.ndarray]]  # part -> (ids as str array, (m, d) emb)


def _npz(uri: str, **arrays) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    storage.atomic_write_bytes(uri, buf.getvalue())


def _sample_part(read: ReadPart, part: str, rows: int, seed: int) -> np.ndarray:
    _, emb = read(part)
    if len(emb) > rows:
        emb = emb[np.sort(np.random.default_rng([seed, len(emb)]).choice(len(emb), rows, replace=False))]
    return normalize(emb) if len(emb) else np.empty((0, 0), np.float32)


def _assign_part(read: ReadPart, part: str, index: int, centroids: np.ndarray, n_assign: int, n_buckets: int,
                 workdir: str) -> int:
    ids, emb = read(part)
    if not len(ids):
        return 0
    x = normalize(emb)
    labels = nearest_centroids(x, centroids, n_assign)
    rows = np.repeat(np.arange(len(x)), labels.shape[1])  # a row is spilled once per cluster it joins
    labels = labels.reshape(-1)
    for b in np.unique(labels % n_buckets):
        sel = labels % n_buckets == b
        _npz(storage.join(workdir, f"bucket-{b:05d}", f"{index:06d}.npz"), ids=ids[rows[sel]].astype(str),
             labels=labels[sel], emb=x[rows[sel]].astype(np.float16))
    return len(ids)


def _bucket_pairs(bucket: str, threshold: float, block: int) -> np.ndarray:
    files = storage.glob(storage.join(bucket, "*.npz"))
    loaded = [np.load(io.BytesIO(storage.read_bytes(f))) for f in files]
    ids = np.concatenate([z["ids"] for z in loaded])
    x = normalize(np.concatenate([z["emb"] for z in loaded]))
    pairs = cluster_pairs(x, np.concatenate([z["labels"] for z in loaded]), threshold, block)
    return ids[pairs].reshape(-1, 2)


def semantic_pairs_from_parts(parts: list[str], read: ReadPart, n_rows: int, config: SemDedupConfig,
                              workdir: str, map_fn: Callable[..., Iterable] = map) -> np.ndarray:
    """Duplicate id pairs over all parts, never holding more than a sample, a part or a bucket.

    ``map_fn(fn, *iterables)`` runs the per-part and per-bucket steps (builtin ``map``,
    or a parallel one); ``read`` must be picklable for a parallel ``map_fn``.
    """
    if n_rows < 2 or not parts:
        return np.empty((0, 2), dtype=object)
    per_part = max(1, math.ceil(config.fit_sample / len(parts)))
    samples = [s for s in map_fn(_sample_part, [read] * len(parts), parts, [per_part] * len(parts),
                                 [config.seed] * len(parts)) if len(s)]
    if not samples:
        return np.empty((0, 2), dtype=object)
    k = config.clusters_for(n_rows)
    centroids = fit_kmeans(np.concatenate(samples), k, config.iters, config.seed)
    # About `cluster_size * 50` rows per bucket: whole clusters, a bounded load per task.
    n_buckets = max(1, min(len(centroids), math.ceil(n_rows / (config.cluster_size * 50))))
    n = len(parts)
    list(map_fn(_assign_part, [read] * n, parts, range(n), [centroids] * n, [config.n_assign] * n,
                [n_buckets] * n, [workdir] * n))
    buckets = sorted({f.rsplit("/", 2)[-2] for f in storage.glob(storage.join(workdir, "bucket-*", "*.npz"))})
    uris = [storage.join(workdir, b) for b in buckets]
    found = list(map_fn(_bucket_pairs, uris, [config.threshold] * len(uris), [config.block] * len(uris)))
    found = [p for p in found if len(p)]
    if not found:
        return np.empty((0, 2), dtype=object)
    # A pair met in two clusters (rows join n_assign clusters) is reported once, as (lower id, higher id).
    pairs = np.sort(np.concatenate(found).astype(str), axis=1)
    return np.unique(pairs, axis=0)
