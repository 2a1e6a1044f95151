"""The whole data path on a non-local fsspec filesystem (memory://): nothing assumes local disk."""
from __future__ import annotations

import io
import json
import os
import tarfile
import uuid

import fsspec

from jobs.ingest_job import run_ingest
from jobs.shard_job import ShardOptions, run_shard
from jobs.spec import parse_spec
from pipeline import catalog
from pipeline.dataset import Dataset


def test_ingest_query_shard_on_memory_filesystem(corpus):
    fs = fsspec.filesystem("memory")
    root = f"/t-{uuid.uuid4().hex[:8]}"
    for name in sorted(os.listdir(corpus.folder)):
        fs.pipe(f"{root}/corpus/{name}", (corpus.folder / name).read_bytes())
    spec = parse_spec({
        "name": "remote", "dataset": f"memory://{root}/ds",
        "sources": [{"name": "photos", "type": "image_folder", "path": f"memory://{root}/corpus"}],
    })
    summary = run_ingest(spec, mode="local")
    ds = Dataset(f"memory://{root}/ds")
    n = catalog.query(ds, "SELECT count(*) AS n FROM samples").to_pylist()[0]["n"]
    assert n == summary.samples > 0 and summary.rejects > 0
    assert fs.ls(f"{root}/ds/payload")  # media bytes went to the memory store

    run_shard(ds.root, ShardOptions(out=f"memory://{root}/shards", where="NOT is_duplicate"))
    selected = catalog.query(ds, "SELECT sample_id FROM samples WHERE NOT is_duplicate").column("sample_id").to_pylist()
    packed = []
    for path in fs.glob(f"{root}/shards/*.tar"):
        with tarfile.open(fileobj=io.BytesIO(fs.cat(path))) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".json"):
                    packed += [s["sample_id"] for s in json.load(tar.extractfile(member))["samples"]]
    manifest = json.loads(fs.cat(f"{root}/shards/manifest.json"))
    assert sorted(packed + manifest["oversized_sample_ids"]) == sorted(selected)
    assert not os.path.exists(f"memory:{root}")  # nothing leaked onto local disk
