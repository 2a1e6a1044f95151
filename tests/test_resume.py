"""Resume: a re-run skips finished partitions and redoes the rest; helpers for the kill tests
(tests/test_faults.py kills the driver and workers of real runs at random points)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

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


def assert_same_catalog(got: tuple[list, list], want: tuple[list, list]) -> None:
    """Row for row, the corpus location aside (each run may read its own copy)."""
    strip = lambda rows: [{k: (v.split("/corpus")[-1] if isinstance(v, str) else v) for k, v in r.items()} for r in rows]
    for table_got, table_want in zip(got, want):
        assert len(table_got) == len(table_want)
        assert strip(table_got) == strip(table_want)
    ids = [r["sample_id"] for r in got[0]]
    assert len(ids) == len(set(ids))


def start_ingest(spec: dict, tmp_path) -> tuple[subprocess.Popen, Path]:
    """``tessera ingest`` in its own process group; its stderr goes to a file (a pipe
    nobody drains could fill up and stall the run)."""
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    log = tmp_path / "ingest.stderr"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobs.cli", "ingest", str(spec_path)],
            start_new_session=True, stdout=subprocess.DEVNULL, stderr=err,
        )
    return proc, log


def wait_for_markers(ds: Dataset, job_id: str, n: int, proc: subprocess.Popen, log: Path, timeout_s: float = 240) -> None:
    deadline = time.time() + timeout_s
    while len(ds.done_partitions(job_id)) < n:
        assert proc.poll() is None, log.read_text()[-2000:]
        assert time.time() < deadline, "the run never got going"
        time.sleep(0.1)


def total_partitions(spec: dict) -> int:
    parsed = parse_spec(spec)
    return sum(len(s.build().partitions(parsed.partition_size)) for s in parsed.sources)


def test_resume_skips_finished_partitions(corpus, tmp_path):
    """A partition with a marker is not redone; one without (a run that died before
    committing it) is, and the catalog ends whole. (Killed runs: tests/test_faults.py.)"""
    root = str(tmp_path / "dataset")
    spec = parse_spec(spec_dict(corpus, root))
    first = run_ingest(spec, mode="local")
    ds = Dataset(root)
    done = sorted(ds.done_partitions(spec.job_id))
    want = catalog_rows(ds)
    lost = done[len(done) // 2]
    os.remove(ds.partition_marker(spec.job_id, lost))
    again = run_ingest(parse_spec(spec_dict(corpus, root)), mode="local")
    assert again.partitions_skipped == first.partitions - 1
    assert sorted(ds.done_partitions(spec.job_id)) == done
    assert_same_catalog(catalog_rows(ds), want)


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
