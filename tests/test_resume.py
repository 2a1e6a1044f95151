"""A real ingestion run killed half-way, then re-run, ends with every input exactly once."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest
import yaml

from jobs.ingest_job import run_ingest
from jobs.spec import parse_spec
from pipeline import catalog, storage
from pipeline.dataset import Dataset

pytestmark = pytest.mark.slow


def spec_dict(corpus, dataset: str) -> dict:
    return {
        "name": "resume",
        "dataset": dataset,
        "tokenizer": "byte-level",
        "partition_size": 2,  # many partitions, so the kill lands in the middle
        "sources": [
            {"name": "photos", "type": "image_folder", "path": str(corpus.folder)},
            {"name": "captions", "type": "manifest", "path": str(corpus.manifest_jsonl)},
            {"name": "web", "type": "webdataset", "path": os.path.join(str(corpus.root), "tars", "*.tar")},
        ],
    }


def catalog_rows(ds: Dataset) -> tuple[list, list]:
    samples = catalog.query(ds, "SELECT sample_id, input_ref, total_tokens, n_tiles, media FROM samples ORDER BY sample_id")
    rejects = catalog.query(ds, "SELECT input_ref, stage, reason FROM rejects ORDER BY input_ref")
    return samples.to_pylist(), rejects.to_pylist()


def test_killed_run_resumes_to_the_same_catalog(corpus, ray_local, tmp_path):
    killed = str(tmp_path / "killed")
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec_dict(corpus, killed)))
    spec = parse_spec(spec_dict(corpus, killed))
    total = sum(len(s.build().partitions(spec.partition_size)) for s in spec.sources)
    ds = Dataset(killed)

    proc = subprocess.Popen(
        [sys.executable, "-m", "jobs.cli", "ingest", str(spec_path)],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.time() + 240
    while len(ds.done_partitions(spec.job_id)) < 4:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.time() < deadline, "the run never got going"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its embedded Ray, at once
    proc.wait()
    done_at_kill = len(ds.done_partitions(spec.job_id))
    assert 0 < done_at_kill < total

    # Whatever the kill left is readable: no half-written catalog file is visible.
    for f in ds.sample_files() + ds.reject_files():
        pq.read_table(f)

    resumed = run_ingest(parse_spec(spec_dict(corpus, killed)), mode="ray")
    assert resumed.partitions_skipped >= done_at_kill
    assert resumed.inputs == resumed.samples + resumed.rejects

    reference = str(tmp_path / "reference")
    run_ingest(parse_spec(spec_dict(corpus, reference)), mode="ray")
    got, want = catalog_rows(ds), catalog_rows(Dataset(reference))
    for table_got, table_want in zip(got, want):
        assert len(table_got) == len(table_want)
        strip = lambda rows: [{k: (v.split("/corpus")[-1] if isinstance(v, str) else v) for k, v in r.items()} for r in rows]
        assert strip(table_got) == strip(table_want)
    ids = [r["sample_id"] for r in got[0]]
    assert len(ids) == len(set(ids))


def test_atomic_write_leaves_nothing_on_failure(tmp_path, monkeypatch):
    import fsspec.implementations.local as local

    target = tmp_path / "catalog" / "part.json"

    def broken_mv(self, *a, **k):
        raise OSError("disk went away")

    monkeypatch.setattr(local.LocalFileSystem, "mv", broken_mv)
    with pytest.raises(OSError):
        storage.atomic_write_json(str(target), {"a": 1})
    monkeypatch.undo()
    assert not target.exists()
    assert list((tmp_path / "catalog").iterdir()) == []  # the temporary file is gone too
    storage.atomic_write_json(str(target), {"a": 1})
    assert storage.read_json(str(target)) == {"a": 1}
