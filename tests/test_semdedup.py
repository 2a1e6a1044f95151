"""Semantic dedup: k-means + in-cluster cosine, in memory and out of core; dedup integration."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from filters.dedup import DedupConfig, dedup_table
from filters.dedup.semantic import (SemDedupConfig, cluster_pairs, fit_kmeans, nearest_centroid, normalize,
                                    pairs_within, semantic_pairs, semantic_pairs_from_parts)
from pipeline.dedup_catalog import EmbeddingReader


def planted(n_base: int = 600, n_dup: int = 60, d: int = 64, seed: int = 0):
    """Distinct random unit vectors plus near copies (cosine ~0.99) of ``n_dup`` of them."""
    rng = np.random.default_rng(seed)
    base = normalize(rng.standard_normal((n_base, d)))
    src = rng.choice(n_base, n_dup, replace=False)
    dups = normalize(base[src] + 0.1 * rng.standard_normal((n_dup, d)) / np.sqrt(d))
    x = np.concatenate([base, dups])
    truth = {(int(s), n_base + i) for i, s in enumerate(src)}
    return x, truth


def brute(x, threshold):
    sims = normalize(x) @ normalize(x).T
    a, b = np.nonzero(np.triu(sims >= threshold, 1))
    return set(zip(a.tolist(), b.tolist()))


def test_pairs_within_matches_brute_force_across_blocks():
    x, _ = planted(150, 30, d=16)
    got = {tuple(p) for p in pairs_within(x, 0.5, block=7).tolist()}
    assert got == brute(x, 0.5) and len(got) > 30


def test_kmeans_finds_separated_clusters():
    rng = np.random.default_rng(1)
    centers = normalize(rng.standard_normal((5, 32)))
    x = normalize(np.repeat(centers, 40, axis=0) + 0.05 * rng.standard_normal((200, 32)))
    labels = nearest_centroid(x, fit_kmeans(x, 5, seed=3))
    for g in range(5):  # each true group maps to one cluster, and groups do not share clusters
        assert len(set(labels[g * 40 : (g + 1) * 40])) == 1
    assert len(set(labels)) == 5


def test_semantic_pairs_find_planted_duplicates_and_nothing_else():
    x, truth = planted()
    found = {tuple(p) for p in semantic_pairs(x, SemDedupConfig(threshold=0.95, n_clusters=12)).tolist()}
    assert found == truth  # random 64-d vectors are ~orthogonal: no false pairs
    assert cluster_pairs(x, np.arange(len(x)), 0.95).size == 0  # singleton clusters compare nothing


def test_out_of_core_equals_in_memory(tmp_path):
    x, truth = planted(900, 90, seed=2)
    ids = np.array([f"s{i:04d}" for i in range(len(x))])
    parts = []
    for k, chunk in enumerate(np.array_split(np.random.default_rng(0).permutation(len(x)), 7)):
        uri = str(tmp_path / f"p{k}.parquet")
        emb = pa.array([r.astype(np.float16) for r in x[chunk]], pa.list_(pa.float16()))
        pq.write_table(pa.table({"sample_id": ids[chunk], "emb": emb}), uri)
        parts.append(uri)
    config = SemDedupConfig(threshold=0.95, n_clusters=10, fit_sample=300, cluster_size=100)
    found = semantic_pairs_from_parts(parts, EmbeddingReader("emb"), len(x), config, str(tmp_path / "work"))
    got = {tuple(sorted((int(a[1:]), int(b[1:])))) for a, b in found.tolist()}
    assert got == truth
    assert len(list((tmp_path / "work").glob("bucket-*"))) >= 1


def table(n: int, **extra) -> pa.Table:
    cols = {"sample_id": [f"id{i}" for i in range(n)], "order_key": [0] * n,
            "media_sha256": [[f"sha{i}"] for i in range(n)], "media_phash": [[i * 0x0F0F0F0F0F] for i in range(n)],
            "text": [f"caption number {i} " + "x" * i for i in range(n)]}
    return pa.table({**cols, **extra})


def test_embedding_signal_joins_clusters_and_best_score_is_representative():
    # id1~id2 by embedding, id2~id3 by exact media: one cluster {1,2,3} by union-find.
    t = table(5).set_column(2, "media_sha256", pa.array([["a"], ["b"], ["c"], ["c"], ["e"]]))
    t = t.append_column("preference", pa.array([0.1, 0.2, 0.9, 0.5, None], pa.float64()))
    signals = ("exact_media", "exact_text", "near_text", "near_image", "near_embedding")
    pairs = {"near_embedding": np.array([[1, 2]])}
    out = {r["sample_id"]: r for r in dedup_table(t, DedupConfig(duplicate_signals=signals,
                                                                 representative="best:clip_score"), pairs).to_pylist()}
    assert {out[f"id{i}"]["dup_cluster"] for i in (1, 2, 3)} == {"id2"}  # highest preference wins
    assert [out[f"id{i}"]["is_duplicate"] for i in range(5)] == [False, True, False, True, False]
    assert out["id1"]["near_embedding_cluster"] == out["id2"]["near_embedding_cluster"] == "id2"
    assert out["id3"]["near_embedding_cluster"] is None and out["id3"]["exact_media_cluster"] == "id2"

    earliest = {r["sample_id"]: r for r in dedup_table(t, DedupConfig(duplicate_signals=signals), pairs).to_pylist()}
    assert earliest["id3"]["dup_cluster"] == "id1"
    # Reported but not joined unless listed in duplicate_signals (the default keeps is_duplicate as before).
    default = {r["sample_id"]: r for r in dedup_table(t, DedupConfig(), pairs).to_pylist()}
    assert default["id1"]["near_embedding_cluster"] == "id1" and not default["id1"]["is_duplicate"]
    assert default["id2"]["dup_cluster"] == "id2"


def test_config_validation():
    with pytest.raises(ValueError, match="representative"):
        DedupConfig(representative="highest")
    with pytest.raises(ValueError, match="preference"):
        dedup_table(table(3), DedupConfig(representative="best:clip_score"))
