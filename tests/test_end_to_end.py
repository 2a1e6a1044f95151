"""End to end on a real Ray local cluster: ingest, query, shard, re-shard, read back with webdataset.

The demo corpus covers the image-text layouts; every other source type (OCR, charts, HTML
documents, interleaved, video, web URLs on a loopback server) joins with a couple of
inputs each, ingested on the same Ray into its own dataset and sharded too.
"""
from __future__ import annotations

import hashlib
import io
import json
import os

import pytest
import webdataset as wds

from jobs.cli import main
from jobs.demo import LENIENT, STRICT, corpus_texts, demo_spec
from jobs.ingest_job import run_ingest
from jobs.shard_job import ShardOptions, run_shard
from jobs.spec import parse_spec
from model.tokenizer import build_tokenizer
from pipeline import catalog
from pipeline.dataset import Dataset
from pipeline.image_io import decode_image
from pipeline.tiling import TilingConfig, count_tiles

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ingested(corpus, ray_local, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("e2e"))
    build_tokenizer(os.path.join(out, "tokenizer"), texts=corpus_texts(str(corpus.root)), vocab_size=600)
    spec = parse_spec(demo_spec(out, corpus))
    summary = run_ingest(spec, mode="ray")
    return spec, summary, Dataset(spec.dataset)


def name_of(ref: str, corpus) -> str:
    return ref.removeprefix(str(corpus.root) + "/")


def rows(ds, sql):
    return catalog.query(ds, sql).to_pylist()


def test_every_input_is_a_sample_or_a_reject_exactly_once(ingested, corpus):
    spec, summary, ds = ingested
    samples = [name_of(r["input_ref"], corpus) for r in rows(ds, "SELECT input_ref FROM samples")]
    rejects = {name_of(r["input_ref"], corpus): r["reason"] for r in rows(ds, "SELECT input_ref, reason FROM rejects")}
    assert len(samples) == len(set(samples)) == corpus.truth.n_valid
    assert not set(samples) & set(rejects)
    for name, reason in corpus.truth.corrupt.items():
        assert rejects.get(name) == reason, name
    assert summary.samples == len(samples) and summary.rejects == len(rejects)
    assert summary.inputs == summary.samples + summary.rejects


def test_rule_filters_flag_bad_captions_without_dropping(ingested, corpus):
    _, _, ds = ingested
    flags = {name_of(r["input_ref"], corpus): r["rule_flags"] for r in rows(ds, "SELECT input_ref, rule_flags FROM samples")}
    for name, rule in corpus.truth.bad_captions.items():
        assert rule in flags[name], (name, flags[name])
    clean = rows(ds, "SELECT count(*) AS n FROM samples WHERE passes_rules")[0]["n"]
    assert 0 < clean < len(flags)


def test_planted_duplicates_share_a_cluster_with_one_representative(ingested, corpus):
    _, _, ds = ingested
    by_name = {name_of(r["input_ref"], corpus): r for r in
               rows(ds, "SELECT input_ref, sample_id, dup_cluster, is_duplicate FROM samples")}
    for group in corpus.truth.duplicate_groups:
        members = [by_name[n] for n in group if n in by_name]
        assert len(members) >= 2, group
        assert len({m["dup_cluster"] for m in members}) == 1, group
        assert sum(not m["is_duplicate"] for m in members) == 1, group


def test_tile_and_token_counts_follow_the_tiling(ingested):
    _, _, ds = ingested
    for r in rows(ds, "SELECT media, n_tiles, image_tokens FROM samples LIMIT 40"):
        (m,) = r["media"]
        assert m["n_tiles"] == count_tiles(m["width"], m["height"], TilingConfig())
        assert r["image_tokens"] == r["n_tiles"] * 256 + 2


def test_query_cli_formats_and_read_only(ingested, capsys, tmp_path):
    _, _, ds = ingested
    assert main(["query", ds.root, "SELECT source, count(*) AS n FROM samples GROUP BY source ORDER BY source",
                 "--format", "json"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sum(r["n"] for r in out) == rows(ds, "SELECT count(*) AS n FROM samples")[0]["n"]
    assert {r["source"] for r in out} == {"photos", "captions", "bytes", "web"}
    for sql in ("CREATE TABLE x AS SELECT 1", f"COPY (SELECT 1) TO '{tmp_path}/x.csv'",
                "SELECT * FROM read_csv('/etc/passwd')", "SELECT 1; SELECT 2"):
        assert main(["query", ds.root, sql]) == 2
        assert "error" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def read_shards(out: str) -> list[dict]:
    tars = sorted(os.path.join(out, f) for f in os.listdir(out) if f.endswith(".tar"))
    return list(wds.WebDataset(tars, shardshuffle=False))


def check_shard_set(ds, out: str, where: str, max_tokens: int, max_tiles: int):
    expected = {r["sample_id"]: r for r in rows(ds, f"SELECT sample_id, media FROM samples WHERE {where}")}
    seen = []
    for pack in read_shards(out):
        record = json.loads(pack["json"])
        assert record["total_tokens"] <= max_tokens and record["total_tiles"] <= max_tiles
        pos = 0
        for sub in record["samples"]:
            assert sub["token_start"] == pos and sub["token_end"] - pos == sub["total_tokens"]
            pos = sub["token_end"]
            seen.append(sub["sample_id"])
            media = expected[sub["sample_id"]]["media"]
            assert len(sub["images"]) == len(media)
            per_image = TilingConfig().for_n_images(max(1, len(media)))  # multi-image samples split the budget
            for img, ref in zip(sub["images"], media):
                data = pack[img["member"]]
                assert hashlib.sha256(data).hexdigest() == ref["sha256"]  # intact original bytes
                decoded = decode_image(data)
                assert img["n_tiles"] == count_tiles(decoded.width, decoded.height, per_image)
    oversized = json.load(open(os.path.join(out, "manifest.json")))["oversized_sample_ids"]
    assert sorted(seen + oversized) == sorted(expected)  # exactly the selection, each once
    return seen


def test_shard_then_reshard_without_decoding(ingested, tmp_path, monkeypatch):
    spec, _, ds = ingested
    lenient = run_shard(spec.dataset, ShardOptions(out=str(tmp_path / "a"), where=LENIENT, packs_per_shard=8))
    a = check_shard_set(ds, str(tmp_path / "a"), LENIENT, 8192, 48)
    assert lenient.packed == len(a) and lenient.token_fill > 0.9

    # Re-sharding must not decode images nor re-run filters: make both impossible.
    import pipeline.image_io
    import filters.rules

    def forbidden(*a, **k):
        raise AssertionError("re-sharding decoded or re-scored a sample")

    monkeypatch.setattr(pipeline.image_io, "decode_image", forbidden)
    monkeypatch.setattr(filters.rules, "measure", forbidden)
    monkeypatch.setattr("PIL.Image.open", forbidden)
    strict = run_shard(spec.dataset, ShardOptions(out=str(tmp_path / "b"), where=STRICT, max_tokens=4096, max_tiles=16))
    monkeypatch.undo()
    b = check_shard_set(ds, str(tmp_path / "b"), STRICT, 4096, 16)
    assert set(b) < set(a) and strict.packed == len(b)
    manifest = json.load(open(tmp_path / "b" / "manifest.json"))
    assert manifest["where"] == STRICT and manifest["packing"]["max_tokens"] == 4096
    assert manifest["tokenizer_fingerprint"] == ds.read_record()["tokenizer"]["fingerprint"]
    listed = rows(ds, "SELECT shard_set, count(*) AS n FROM shards GROUP BY shard_set ORDER BY shard_set")
    assert {r["shard_set"]: r["n"] for r in listed} == {"a": len(a), "b": len(b)}


def test_sharding_is_deterministic_for_a_seed(ingested, tmp_path):
    spec, _, _ = ingested
    digests = []
    for name in ("x", "y"):
        run_shard(spec.dataset, ShardOptions(out=str(tmp_path / name), where=LENIENT, seed=7))
        tars = sorted(p for p in os.listdir(tmp_path / name) if p.endswith(".tar"))
        digests.append([hashlib.sha256((tmp_path / name / t).read_bytes()).hexdigest() for t in tars])
    assert digests[0] == digests[1]


def test_mixture_budgets_and_weights(ingested, tmp_path):
    spec, _, ds = ingested
    mix = tmp_path / "mix.yaml"
    mix.write_text(
        "components:\n"
        "  - {name: budgeted, where: \"source = 'captions'\", max_samples: 3}\n"
        "  - {name: photos, where: \"source = 'photos'\", weight: 2}\n"
        "  - {name: web, where: \"source = 'web'\", weight: 1}\n"
    )
    summary = run_shard(spec.dataset, ShardOptions(out=str(tmp_path / "m"), where=LENIENT, mixture=str(mix)))
    counts = summary.by_component
    assert counts["budgeted"] == 3
    available_web = rows(ds, f"SELECT count(*) AS n FROM samples WHERE source = 'web' AND {LENIENT}")[0]["n"]
    available_photos = rows(ds, f"SELECT count(*) AS n FROM samples WHERE source = 'photos' AND {LENIENT}")[0]["n"]
    assert counts["web"] <= available_web and counts["photos"] <= available_photos
    assert abs(counts["photos"] - 2 * counts["web"]) <= 2  # 2:1 up to rounding
    assert counts["web"] == available_web or counts["photos"] == available_photos  # as large as possible


def test_second_job_is_deduped_against_the_first(ingested, corpus):
    spec, _, ds = ingested
    first_job = spec.job_id
    second = demo_spec(os.path.dirname(spec.dataset), corpus)
    second["name"] = "second"
    second["sources"] = [s | {"name": "web-again"} for s in second["sources"] if s["name"] == "web"]
    summary = run_ingest(parse_spec(second), mode="ray")
    assert summary.samples > 0
    again = rows(ds, "SELECT s.is_duplicate, r.job_id AS rep_job FROM samples s "
                     "JOIN samples r ON r.sample_id = s.dup_cluster WHERE s.source = 'web-again'")
    assert len(again) == summary.samples
    assert all(r["is_duplicate"] and r["rep_job"] == first_job for r in again)


# ---- every other source type ------------------------------------------------------------------
NEW_SOURCE_KINDS = {"synthetic_ocr": {"ocr"}, "ocr_images": {"ocr"}, "charts": {"document"},
                    "html_documents": {"document"}, "interleaved": {"interleaved"}, "video": {"video"},
                    "web_urls": {"image_text"}}


@pytest.fixture(scope="module")
def new_sources(ingested, tmp_path_factory):
    from pipeline.render.demo_sources import demo_sources, serve_folder, web_folder

    spec, _, _ = ingested
    root = str(tmp_path_factory.mktemp("new-sources"))
    server = serve_folder(web_folder(root))
    try:
        entries = demo_sources(root, count=2, url_base=server.url("").rstrip("/"), hanging_page=False)
        new = parse_spec({"name": "new-sources", "dataset": os.path.join(root, "dataset"),
                          "tokenizer": spec.tokenizer, "partition_size": 8, "sources": entries})
        summary = run_ingest(new, mode="ray")
    finally:
        server.stop()
    return new, summary, Dataset(new.dataset)


def test_every_source_type_writes_catalog_rows_and_rejects_with_reasons(new_sources):
    spec, summary, ds = new_sources
    types = {s.name: s.type for s in spec.sources}
    assert set(types.values()) >= set(NEW_SOURCE_KINDS) - {"html_documents"}  # docs need chromium
    kinds = {}
    for r in rows(ds, "SELECT source, kind FROM samples"):
        kinds.setdefault(types[r["source"]], set()).add(r["kind"])
    assert kinds == {t: NEW_SOURCE_KINDS[t] for t in types.values()}  # every type has samples
    rejects = {(types[r["source"]], r["stage"], r["reason"]) for r in rows(ds, "SELECT * FROM rejects")}
    assert {("video", "decode", "not_a_video"), ("web_urls", "fetch", "http_404")} <= rejects
    assert summary.inputs == summary.samples + summary.rejects == len(rows(ds, "SELECT 1 FROM samples")) + len(
        rows(ds, "SELECT 1 FROM rejects"))
    dropped = rows(ds, "SELECT extra FROM samples WHERE kind = 'interleaved' AND extra LIKE '%lost.jpg%'")
    assert len(dropped) == 1  # the document kept its text and its one existing picture
    for r in rows(ds, "SELECT media FROM samples WHERE kind = 'video'"):
        times = [m["timestamp_s"] for m in r["media"]]
        assert len(times) >= 2 and times == sorted(times)


def test_every_source_type_reaches_the_shards(new_sources, tmp_path):
    spec, _, ds = new_sources
    types = {s.name: s.type for s in spec.sources}
    out = str(tmp_path / "shards")
    result = run_shard(spec.dataset, ShardOptions(out=out, where=LENIENT, max_tokens=16384, max_tiles=48))
    seen = check_shard_set(ds, out, LENIENT, 16384, 48)  # intact bytes, tile counts, each sample once
    source_of = {r["sample_id"]: types[r["source"]] for r in rows(ds, "SELECT sample_id, source FROM samples")}
    assert {source_of[s] for s in seen} == set(types.values())
    assert result.packed == len(seen)
