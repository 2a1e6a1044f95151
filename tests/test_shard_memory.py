"""The shard step streams: its peak Python memory stays far below the size of all selected rows
as Python objects, and every selected sample lands in exactly one pack of one shard.

The catalog is written directly (20k sample rows whose media point at a few payload
files), so the test measures the shard step alone, without ingest.
"""
from __future__ import annotations

import hashlib
import json
import os
import tarfile
import tracemalloc

import pyarrow.parquet as pq
import pytest

from jobs.shard_job import ShardOptions, run_shard
from model.chat_template import caption_conversation
from pipeline import catalog, storage
from pipeline.dataset import Dataset
from pipeline.sources.synthetic import SyntheticConfig, SyntheticSource
from schemas import MediaRef, Sample, samples_to_table

N = 20_000
PER_FILE = 2_000
JOB = "scale-test"


@pytest.fixture(scope="module")
def big_catalog(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("catalog") / "dataset")
    ds = Dataset(root)
    ds.register_job(JOB, "fingerprint-test", "byte-level", {"tile_size": 448})
    synth = SyntheticSource("synth", SyntheticConfig(count=N))
    payloads = []
    for i in range(8):  # a few real images, shared by all rows: the test is about rows, not bytes
        data = synth.image(i)
        sha = hashlib.sha256(data).hexdigest()
        rel = ds.payload_path(sha, "png")
        storage.atomic_write_bytes(ds.uri(rel), data)
        payloads.append(MediaRef(uri=rel, sha256=sha, format="png", width=24, height=24, nbytes=len(data),
                                 phash=i, n_tiles=1 + i % 3))
    for start in range(0, N, PER_FILE):
        rows = []
        for i in range(start, start + PER_FILE):
            sid = hashlib.sha256(f"row-{i}".encode()).hexdigest()[:32]
            media = [payloads[i % len(payloads)]] * (1 + i % 2)
            text = synth.caption(i) + " " + "detail " * (i % 40)
            rows.append(Sample(
                sample_id=sid, content_hash=sid, source=f"src{i % 3}", kind="image_text", job_id=JOB,
                input_ref=f"synthetic://{i}", text=text,
                conversation=caption_conversation(text, sid, n_images=len(media)), media=media,
                n_tiles=sum(m.n_tiles for m in media), text_tokens=40 + i % 200,
                image_tokens=sum(m.n_tiles * 256 + 2 for m in media)))
        storage.atomic_write_parquet(ds.samples_part(JOB, f"p{start:06d}"), samples_to_table(rows))
    return ds


def _all_rows_as_python_bytes(ds: Dataset, where: str) -> int:
    """What holding every selected row's columns as Python objects costs (the old shard step)."""
    cols = "sample_id, source, kind, conversation, media, text_tokens, image_tokens, total_tokens, n_tiles"
    table = catalog.query(ds, f"SELECT {cols} FROM samples WHERE {where}")
    tracemalloc.start()
    rows = table.to_pylist()
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del rows
    return size


def test_shard_peak_memory_is_bounded_and_every_sample_lands_once(big_catalog, tmp_path):
    ds = big_catalog
    where = "source <> 'src2' OR text_tokens % 2 = 0"
    expected = {r["sample_id"] for r in catalog.query(ds, f"SELECT sample_id FROM samples WHERE {where}").to_pylist()}
    assert len(expected) > N // 2
    materialised = _all_rows_as_python_bytes(ds, where)

    out = str(tmp_path / "shards")
    tracemalloc.start()
    summary = run_shard(ds.root, ShardOptions(out=out, where=where, max_tokens=4096, max_tiles=16, packs_per_shard=16))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # Holding all rows as Python objects alone costs `materialised` (~39 MB here); the
    # streaming step holds arrays plus one shard's rows at a time.
    assert peak < materialised / 2, (peak, materialised)  # measured: ~12 MB vs ~39 MB; the old step peaked at ~50 MB

    assert summary.packed + summary.oversized == summary.selected == len(expected)
    seen = []
    for name in sorted(f for f in os.listdir(out) if f.endswith(".tar")):
        with tarfile.open(os.path.join(out, name)) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".json"):
                    record = json.loads(tar.extractfile(member).read())
                    assert record["total_tokens"] <= 4096 and record["total_tiles"] <= 16
                    seen += [s["sample_id"] for s in record["samples"]]
    oversized = json.load(open(os.path.join(out, "manifest.json")))["oversized_sample_ids"]
    assert len(seen) == len(set(seen)) == summary.packed  # each packed sample in exactly one pack
    assert set(seen) | set(oversized) == expected and not set(seen) & set(oversized)
    index = pq.read_table(os.path.join(out, "index.parquet"))
    assert sorted(index.column("sample_id").to_pylist()) == sorted(seen)
