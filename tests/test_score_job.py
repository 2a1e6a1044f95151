"""``tessera score`` on an ingested demo dataset: local vs Ray, resume, cascades, ranks, shard."""
from __future__ import annotations

import os
import shutil
from collections import Counter

import numpy as np
import pytest

from jobs.cli import main
from jobs.demo import demo_spec
from jobs.ingest_job import run_ingest
from jobs.score_job import ScoreSpec, parse_score_spec, parse_steps, run_score
from jobs.shard_job import ShardOptions, run_shard
from jobs.spec import parse_spec
from pipeline import catalog, storage
from pipeline.dataset import Dataset
from schemas.config import ConfigError
from tests.test_clip import make_tiny_clip

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base(corpus, tmp_path_factory):
    """An ingested demo dataset (built once, copied by tests that write to it) and tiny CLIP options."""
    out = tmp_path_factory.mktemp("score")
    spec = parse_spec(demo_spec(str(out), corpus) | {"tokenizer": "byte-level"})
    run_ingest(spec, mode="local")
    return spec.dataset, make_tiny_clip(out)


def copy_of(dataset: str, tmp_path, name: str) -> str:
    dst = str(tmp_path / name)
    shutil.copytree(dataset, dst)
    return dst


def clip_rows(root: str) -> dict[str, dict]:
    table = catalog.query(Dataset(root), "SELECT sample_id, source, clip_score, clip_image_emb, clip_error, "
                                         "clip_rank_in_source FROM samples ORDER BY sample_id")
    return {r["sample_id"]: r for r in table.to_pylist()}


def spec_for(clip: dict, where: str = "true", **kw) -> ScoreSpec:
    return ScoreSpec(steps=parse_steps([{"scorer": "clip", "where": where, **clip}]), **kw)


def test_scores_identical_local_and_ray_any_batch_size(base, ray_local, tmp_path):
    dataset, clip = base
    local = copy_of(dataset, tmp_path, "local")
    ray = copy_of(dataset, tmp_path, "ray")
    (s_local,) = run_score(local, spec_for(clip, batch_size=64), mode="local")
    (s_ray,) = run_score(ray, spec_for(clip, batch_size=5, workers=2), mode="ray")
    a, b = clip_rows(local), clip_rows(ray)
    assert s_local["scored"] == s_ray["scored"] == len(a) > 50
    assert s_local["parts"] == len(Dataset(local).sample_files()) > 1
    scored = [r for r in a.values() if r["clip_error"] is None]
    assert len(scored) > 50 and {r["clip_error"] for r in a.values()} <= {None, "no_text"}  # demo has empty captions
    assert a == b  # every score and embedding bit-identical
    # Resume: the same spec again finds every part done and scores nothing.
    (again,) = run_score(local, spec_for(clip, batch_size=7), mode="local")
    assert again["parts_skipped"] == again["parts"] and again["job_id"] == s_local["job_id"]


def test_where_cascade_and_per_part_resume(base, tmp_path):
    dataset, clip = base
    root = copy_of(dataset, tmp_path, "cascade")
    ds = Dataset(root)
    (first,) = run_score(root, spec_for(clip, where="source = 'photos'"), mode="local")
    rows = clip_rows(root)
    assert {r["source"] for r in rows.values() if r["clip_score"] is not None} == {"photos"}
    assert all(r["clip_score"] is None for r in rows.values() if r["source"] != "photos")
    assert first["scored"] == sum(r["source"] == "photos" for r in rows.values())

    # A lost marker redoes exactly that part; the others are skipped.
    markers = storage.glob(ds.uri("jobs", first["job_id"], "partitions", "*.done"))
    os.remove(markers[0])
    (second,) = run_score(root, spec_for(clip, where="source = 'photos'"), mode="local")
    assert second["parts"] - second["parts_skipped"] == 1 and second["scored"] == first["scored"]
    assert clip_rows(root) == rows
    # Unscored samples by reason, from the part markers: the same whether a part was redone or skipped.
    reasons = Counter(f"clip/{r['clip_error']}" for r in rows.values() if r["source"] == "photos" and r["clip_error"])
    assert first["summary"]["rejected_by_reason"] == second["summary"]["rejected_by_reason"] == dict(reasons)
    assert second["summary"]["accepted"] == second["summary"]["inputs"] - sum(reasons.values())
    # Markers from before they kept reasons: the reasons are read back from the score parts.
    for m in storage.glob(ds.uri("jobs", first["job_id"], "partitions", "*.done")):
        storage.atomic_write_json(m, {k: v for k, v in storage.read_json(m).items() if k != "errors_by_reason"})
    (third,) = run_score(root, spec_for(clip, where="source = 'photos'"), mode="local")
    assert third["parts_skipped"] == third["parts"] and third["summary"]["rejected_by_reason"] == dict(reasons)


def test_rank_in_source_selects_top_fraction_per_source(base, tmp_path):
    dataset, clip = base
    root = copy_of(dataset, tmp_path, "rank")
    run_score(root, spec_for(clip), mode="local")
    rows = [r for r in clip_rows(root).values() if r["clip_score"] is not None]
    for source in {r["source"] for r in rows}:
        scores = sorted(r["clip_score"] for r in rows if r["source"] == source)
        kept = [r for r in rows if r["source"] == source and r["clip_rank_in_source"] >= 0.7]
        assert len(kept) == len(scores) - int(np.ceil(0.7 * len(scores) - 1e-9))  # floor(0.3 n), no ties here
        assert min(r["clip_score"] for r in kept) > max(s for s in scores[: len(scores) - len(kept)])

    # ... usable directly in a shard selection, together with an absolute threshold.
    median = float(np.median([r["clip_score"] for r in rows]))
    where = f"clip_rank_in_source >= 0.7 AND clip_score > {median}"
    summary = run_shard(root, ShardOptions(out=str(tmp_path / "shards"), where=where))
    expected = [r for r in rows if r["clip_rank_in_source"] >= 0.7 and r["clip_score"] > median]
    assert summary.packed + summary.oversized == len(expected) > 0


def test_cli_and_spec(base, tmp_path, capsys):
    dataset, clip = base
    root = copy_of(dataset, tmp_path, "cli")
    argv = ["score", root, "clip", "--model", clip["model"], "--checkpoint", clip["checkpoint"],
            "-o", f"model_config={clip['model_config']}", "-o", "infer_batch=16", "--where", "passes_rules", "--local"]
    assert main(argv) == 0
    assert "scored" in capsys.readouterr().out
    n = catalog.query(Dataset(root), "SELECT count(*) AS n FROM samples WHERE passes_rules").to_pylist()[0]["n"]
    assert catalog.query(Dataset(root), "SELECT count(clip_score) AS n FROM samples").to_pylist()[0]["n"] == n
    assert main(["score", root, "clip", "--local"]) == 2  # no weights: a clear error, not a traceback
    assert "checkpoint" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="unknown key"):
        parse_score_spec({"scorers": [{"scorer": "clip", **clip}], "batch_sise": 3})


def test_dataset_dedup_with_embeddings_and_best_representative(base, tmp_path):
    """Planted near-identical embeddings join clusters; the best clip_score is the representative."""
    import pyarrow as pa

    from filters.dedup import DedupConfig
    from filters.dedup.semantic import normalize
    from pipeline.dedup_catalog import dedup_dataset
    from pipeline.scores import write_scores

    dataset, _ = base
    root = copy_of(dataset, tmp_path, "semdedup")
    ds = Dataset(root)
    ids = [r["sample_id"] for r in catalog.query(ds, "SELECT sample_id FROM samples WHERE NOT is_duplicate "
                                                     "ORDER BY sample_id").to_pylist()]
    rng = np.random.default_rng(0)
    emb = normalize(rng.standard_normal((len(ids), 64)))
    pairs = [(ids[i], ids[i + 1]) for i in range(0, 20, 2)]  # 10 planted pairs
    for i in range(0, 20, 2):
        emb[i + 1] = normalize(emb[i : i + 1] + 0.01 * rng.standard_normal((1, 64)))[0]
    score = rng.random(len(ids)).astype(np.float32)
    half = len(ids) // 2  # two parts, so the out-of-core path reads several files
    for k, sl in enumerate((slice(0, half), slice(half, None))):
        write_scores(ds, "clip", f"p{k}", pa.table({
            "sample_id": ids[sl], "clip_score": score[sl],
            "clip_image_emb": pa.array([e.astype(np.float16) for e in emb[sl]], pa.list_(pa.float16()))}))
    signals = ("exact_media", "exact_text", "near_text", "near_image", "near_embedding")
    dedup_dataset(ds, DedupConfig(duplicate_signals=signals, representative="best:clip_score"))
    rows = {r["sample_id"]: r for r in catalog.query(
        ds, "SELECT sample_id, near_embedding_cluster, dup_cluster, is_duplicate FROM dedup").to_pylist()}
    best = dict(zip(ids, score))
    for a, b in pairs:
        winner = a if best[a] > best[b] else b
        assert rows[a]["near_embedding_cluster"] == rows[b]["near_embedding_cluster"] == winner
        assert rows[a]["dup_cluster"] == rows[b]["dup_cluster"]
        assert not rows[winner]["is_duplicate"] or rows[winner]["dup_cluster"] != winner
    assert sum(rows[i]["near_embedding_cluster"] is not None for i in ids) == 20  # nothing else
