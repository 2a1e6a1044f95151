"""``tessera demo``: the whole data path on a small offline corpus, in a few minutes.

Builds a corpus (real photos shipped in scikit-image, generated images, good and bad
captions, planted duplicates, corrupt files) plus a few inputs of every other source
type (``pipeline/render/demo_sources.py``: OCR, charts, HTML documents, interleaved
documents, video, and web URLs on a loopback HTTP server), trains a small BPE tokenizer
on the corpus text, ingests everything into one dataset on an embedded Ray, prints a
DuckDB summary per source, then shards it twice with two filters and prints what each
kept and how full the packed sequences are.
"""
from __future__ import annotations

import os

from jobs.cli import format_table
from jobs.demo_corpus import build_demo_corpus
from jobs.ingest_job import run_ingest
from jobs.shard_job import ShardOptions, run_shard
from jobs.spec import parse_spec
from model.tokenizer import build_tokenizer
from pipeline import catalog
from pipeline.dataset import Dataset
from pipeline.render.demo_sources import demo_sources, serve_folder, web_folder

# Enough samples that the packer fills >= 98% of the sequences (a few hundred; see docs/benchmarks.md).
DEMO_IMAGES = 400
SAMPLES_PER_NEW_SOURCE = 4  # rendering and OCR cost ~0.1-1 s a sample on 2 cores
LENIENT = "NOT is_duplicate"
STRICT = "caption_words >= 5 AND passes_rules AND NOT is_duplicate AND min_side >= 64"


def corpus_texts(root: str) -> list[str]:
    """Every caption of the corpus, in a fixed order, for training the demo tokenizer."""
    import json

    texts = []
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            path = os.path.join(dirpath, name)
            if name.endswith(".txt"):
                with open(path, "rb") as f:
                    texts.append(f.read().decode("utf-8", errors="ignore"))
            elif name.endswith(".jsonl"):
                with open(path, encoding="utf-8", errors="ignore") as f:
                    for line in f:
                        try:
                            texts.append(str(json.loads(line).get("caption", "")))
                        except (ValueError, AttributeError):
                            pass
    return texts


def demo_spec(out: str, corpus) -> dict:
    return {
        "name": "demo",
        "dataset": os.path.join(out, "dataset"),
        "tokenizer": os.path.join(out, "tokenizer"),
        "partition_size": 32,
        "sources": [
            {"name": "photos", "type": "image_folder", "path": str(corpus.folder)},
            {"name": "captions", "type": "manifest", "path": str(corpus.manifest_jsonl)},
            {"name": "bytes", "type": "manifest", "path": str(corpus.manifest_parquet), "image_column": "image_bytes"},
            {"name": "web", "type": "webdataset", "path": os.path.join(str(corpus.root), "tars", "*.tar")},
        ],
    }


SUMMARY_SQL = """
WITH s AS (
  SELECT source, string_agg(DISTINCT kind, ',') AS kind, count(*) AS samples,
         sum(CASE WHEN is_duplicate THEN 1 ELSE 0 END) AS duplicates,
         sum(CASE WHEN passes_rules THEN 0 ELSE 1 END) AS flagged, round(avg(n_tiles), 2) AS avg_tiles,
         round(avg(total_tokens), 1) AS avg_tokens
  FROM samples GROUP BY source),
r AS (SELECT source, count(*) AS rejects FROM rejects GROUP BY source)
SELECT coalesce(s.source, r.source) AS source, s.kind, coalesce(s.samples, 0) AS samples,
       coalesce(r.rejects, 0) AS rejects, s.duplicates, s.flagged, s.avg_tiles, s.avg_tokens
FROM s FULL OUTER JOIN r ON s.source = r.source ORDER BY source"""
REJECTS_SQL = "SELECT stage, reason, count(*) AS n FROM rejects GROUP BY stage, reason ORDER BY n DESC, reason"
FLAGS_SQL = "SELECT unnest(rule_flags) AS flag, count(*) AS n FROM samples GROUP BY flag ORDER BY n DESC, flag"


def run_demo(out: str, mode: str = "ray", address: str | None = None) -> int:
    out = os.path.abspath(out)
    print(f"== building the offline demo corpus in {out}/corpus")
    corpus = build_demo_corpus(os.path.join(out, "corpus"), n_generated=DEMO_IMAGES)
    tok_dir = os.path.join(out, "tokenizer")
    if not os.path.exists(os.path.join(tok_dir, "tokenizer_config.json")):
        build_tokenizer(tok_dir, texts=corpus_texts(str(corpus.root)), vocab_size=2000)
    raw = demo_spec(out, corpus)
    sources_root = os.path.join(out, "sources")
    print(f"== writing a few inputs of every other source type in {sources_root}")
    server = serve_folder(web_folder(sources_root))  # web_urls fetches from it: loopback only
    try:
        raw["sources"] += demo_sources(sources_root, count=SAMPLES_PER_NEW_SOURCE,
                                       url_base=server.url("").rstrip("/"))
        spec = parse_spec(raw)
        print("== ingesting (tessera ingest) on", "an embedded Ray" if mode == "ray" and not address else mode)
        summary = run_ingest(spec, mode=mode, address=address)
    finally:
        server.stop()
    print("\n".join(summary.lines()))

    ds = Dataset(spec.dataset)
    queries = (("samples and rejects per source", SUMMARY_SQL), ("rejects", REJECTS_SQL), ("rule flags", FLAGS_SQL))
    for title, sql in queries:
        print(f"\n== tessera query: {title}")
        print(format_table(catalog.query(ds, sql)))

    for name, where in (("lenient", LENIENT), ("strict", STRICT)):
        print(f"\n== tessera shard --where \"{where}\"")
        result = run_shard(spec.dataset, ShardOptions(out=os.path.join(out, f"shards-{name}"), where=where))
        print("\n".join(result.lines()))

    from jobs.train_demo import run_train_demo

    print("\n== tessera train: a tiny InternVL-style model, three stages, on shards of this corpus")
    run_train_demo(out, corpus, tok_dir)

    print(f"\nDone. Try: tessera query {spec.dataset} \"SELECT * FROM shards LIMIT 5\"")
    return 0
