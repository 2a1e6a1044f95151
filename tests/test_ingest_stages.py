"""Ingest stages: per-input retries, reader failures, retry passes over rejects, the job summary."""
from __future__ import annotations

import os

import pyarrow.parquet as pq
import pytest

from jobs.ingest_job import run_ingest
from jobs.spec import parse_spec
from jobs.summary import format_summary
from pipeline import catalog, storage
from pipeline.dataset import Dataset
from pipeline.sources.image_folder import ImageFolderSource
from pipeline.steps import StoreMedia


def spec_dict(corpus, dataset: str, **kw) -> dict:
    return {"name": "stages", "dataset": dataset, "tokenizer": "byte-level", "partition_size": 8,
            "retry_backoff_s": 0.0,
            "sources": [{"name": "photos", "type": "image_folder", "path": str(corpus.folder)},
                        {"name": "captions", "type": "manifest", "path": str(corpus.manifest_jsonl)}], **kw}


def rows(ds: Dataset) -> tuple[dict, dict]:
    samples = catalog.query(ds, "SELECT input_ref, sample_id FROM samples").to_pylist()
    rejects = catalog.query(ds, "SELECT input_ref, stage, reason, detail FROM rejects").to_pylist()
    assert len({r["input_ref"] for r in samples}) == len(samples)
    assert len({r["input_ref"] for r in rejects}) == len(rejects)
    return {r["input_ref"]: r for r in samples}, {r["input_ref"]: r for r in rejects}


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory):
    """The same spec ingested with nothing failing: what every test must end up with."""
    spec = parse_spec(spec_dict(corpus, str(tmp_path_factory.mktemp("ref") / "ds")))
    run_ingest(spec, mode="local")
    samples, rejects = rows(Dataset(spec.dataset))
    return spec, samples, rejects


def flaky_store(monkeypatch, fails: dict[str, int]):
    """StoreMedia raises OSError for input refs ending with a key, ``fails[key]`` times (-1: always)."""
    real = StoreMedia.__call__
    calls: dict[str, int] = {}

    def store(self, draft):
        for key, n in fails.items():
            if draft.raw.input_ref.endswith(key):
                calls[key] = calls.get(key, 0) + 1
                if n < 0 or calls[key] <= n:
                    raise OSError(f"remote store hiccup on {key}")
        return real(self, draft)

    monkeypatch.setattr(StoreMedia, "__call__", store)
    return calls


def photo_refs(samples: dict) -> list[str]:
    return sorted(r for r in samples if "/folder/" in r)


def test_transient_step_errors_are_retried_then_rejected(corpus, reference, tmp_path, monkeypatch):
    _, ref_samples, ref_rejects = reference
    flaky, dead = (os.path.basename(r) for r in photo_refs(ref_samples)[:2])
    calls = flaky_store(monkeypatch, {flaky: 2, dead: -1})
    spec = parse_spec(spec_dict(corpus, str(tmp_path / "ds"), sample_retries=2))
    summary = run_ingest(spec, mode="local")
    samples, rejects = rows(Dataset(spec.dataset))

    assert calls == {flaky: 3, dead: 3}  # one try + two retries each, no more
    assert set(samples) == set(ref_samples) - {r for r in ref_samples if r.endswith(dead)}
    (gone,) = [r for r in rejects if r.endswith(dead)]
    assert (rejects[gone]["stage"], rejects[gone]["reason"]) == ("media", "error")
    assert "OSError" in rejects[gone]["detail"] and "after 3 attempts" in rejects[gone]["detail"]
    assert {k: v for k, v in rejects.items() if k != gone} == ref_rejects  # nothing else changed
    assert summary.inputs == summary.samples + summary.rejects == len(ref_samples) + len(ref_rejects)
    assert summary.retried == 2 and summary.rejects_by_reason["media/error"] == 1


def test_reader_that_raises_is_reopened_and_a_dead_one_ends_its_partition(corpus, reference, tmp_path, monkeypatch):
    spec0, ref_samples, ref_rejects = reference
    real = ImageFolderSource.read
    opened: dict[str, int] = {}
    broken = {"photos-00000": (3, 1), "photos-00001": (5, 99)}  # partition -> (raise after N inputs, times)

    def read(self, partition):
        opened[partition.partition_id] = opened.get(partition.partition_id, 0) + 1
        for i, raw in enumerate(real(self, partition)):
            at, times = broken.get(partition.partition_id, (None, 0))
            if i == at and opened[partition.partition_id] <= times:
                raise OSError("connection reset while listing")
            yield raw

    monkeypatch.setattr(ImageFolderSource, "read", read)
    spec = parse_spec(spec_dict(corpus, str(tmp_path / "ds"), sample_retries=1))
    run_ingest(spec, mode="local")
    samples, rejects = rows(Dataset(spec.dataset))

    assert opened["photos-00000"] == 2 and opened["photos-00001"] == 2
    # The flaky reader lost nothing; the dead one kept its first 5 inputs and says where it stopped.
    first_two = spec.sources[0].build().partitions(8)[:2]
    lost = [raw.input_ref for raw in real(spec.sources[0].build(), first_two[1])][5:]
    assert lost and all(r not in samples and r not in rejects for r in lost)
    marker = rejects.pop("photos-00001@5")
    assert (marker["stage"], marker["reason"]) == ("read", "error") and "got 5 inputs" in marker["detail"]
    assert set(samples) | set(rejects) == (set(ref_samples) | set(ref_rejects)) - set(lost)

    # A retry pass over read/error reads the rest of that partition once the reader works.
    monkeypatch.setattr(ImageFolderSource, "read", real)
    again = run_ingest(spec, mode="local", retry_rejects=["read/error"])
    samples, rejects = rows(Dataset(spec.dataset))
    assert set(samples) == set(ref_samples) and set(rejects) == set(ref_rejects)
    assert again.retry_passes == 1 and again.inputs == len(ref_samples) + len(ref_rejects)


def test_retry_rejects_reruns_only_those_inputs_exactly_once(corpus, reference, tmp_path, monkeypatch):
    _, ref_samples, ref_rejects = reference
    dead = [os.path.basename(r) for r in photo_refs(ref_samples)[:3]]
    flaky_store(monkeypatch, {d: -1 for d in dead})
    spec = parse_spec(spec_dict(corpus, str(tmp_path / "ds"), sample_retries=0))
    run_ingest(spec, mode="local")
    ds = Dataset(spec.dataset)
    parts_before = {f: pq.read_table(f) for f in ds.sample_files()}
    assert sum(r["reason"] == "error" for r in rows(ds)[1].values()) == 3

    # The store is back, but the first retry pass dies between its two writes.
    monkeypatch.undo()
    real_write = storage.atomic_write_parquet

    def crash_on_rejects(uri, table):
        if "/rejects/" in uri:
            raise OSError("killed")
        real_write(uri, table)

    monkeypatch.setattr(storage, "atomic_write_parquet", crash_on_rejects)
    with pytest.raises(Exception):
        run_ingest(spec, mode="local", retry_rejects=["media/error"])
    monkeypatch.undo()
    retry_parts = [f for f in ds.sample_files() if ".retry-" in f]
    assert retry_parts  # the half-done pass left its samples part ...

    # ... and a plain re-run of the job repairs the catalog without re-running anything.
    summary = run_ingest(spec, mode="local")
    samples, rejects = rows(ds)
    assert set(samples) == set(ref_samples) and rejects == ref_rejects
    assert summary.samples == len(ref_samples) and summary.rejects == len(ref_rejects)
    assert {r: samples[r]["sample_id"] for r in samples} == {r: ref_samples[r]["sample_id"] for r in ref_samples}
    for f, table in parts_before.items():  # accepted samples were never rewritten
        assert pq.read_table(f).equals(table)

    # Nothing left to retry: the same command changes nothing.
    again = run_ingest(spec, mode="local", retry_rejects=["media/error"])
    assert again.retry_passes == 0 and rows(ds) == (samples, rejects)


def test_manifest_summary_matches_the_catalog(reference):
    spec, ref_samples, ref_rejects = reference
    ds = Dataset(spec.dataset)
    manifest = storage.read_json(ds.job_manifest(spec.job_id))
    s = manifest["summary"]
    assert [st["name"] for st in s["stages"]] == ["list", "ingest", "dedup"]
    assert s["inputs"] == len(ref_samples) + len(ref_rejects) and s["accepted"] == len(ref_samples)
    by_reason = catalog.query(ds, "SELECT stage || '/' || reason AS k, count(*) AS n FROM rejects GROUP BY k")
    assert s["rejected_by_reason"] == {r["k"]: r["n"] for r in by_reason.to_pylist()}
    dups = catalog.query(ds, "SELECT count(*) FILTER (WHERE is_duplicate) AS d, "
                             "count(*) FILTER (WHERE exact_media_cluster <> sample_id) AS m FROM samples").to_pylist()[0]
    assert s["duplicates"] == dups["d"] > 0 and s["duplicates_by_signal"]["exact_media"] == dups["m"]
    assert set(s["worker_seconds"]) >= {"read", "decode", "media", "sample", "rules", "write"}
    assert manifest["counts"]["samples"] == len(ref_samples)  # the older keys stay
    lines = format_summary(manifest)
    assert lines[0].startswith(f"ingest job {spec.job_id} (succeeded): {s['inputs']} inputs")
    assert any(line.strip() == f"rejected decode/truncated: {s['rejected_by_reason']['decode/truncated']}"
               for line in lines)
    assert format_summary({"kind": "ingest", "job_id": "x", "status": "running"}) == [
        "ingest job x (running): no summary recorded"]


def test_run_control_keys_keep_the_job_id(corpus, tmp_path):
    base = parse_spec(spec_dict(corpus, str(tmp_path / "ds")))
    other = parse_spec(spec_dict(corpus, str(tmp_path / "ds"), sample_retries=5, retry_backoff_s=2.0))
    assert base.job_id == other.job_id
    assert parse_spec(spec_dict(corpus, str(tmp_path / "ds"), partition_size=4)).job_id != base.job_id


def test_bad_scorer_steps_fail_at_spec_load(corpus, tiny_clip, tmp_path):
    from schemas.config import ConfigError

    ds = str(tmp_path / "ds")
    with pytest.raises(ConfigError, match=r"spec.scorers\[0\].*unknown scorer"):
        parse_spec(spec_dict(corpus, ds, scorers=[{"name": "nope"}]))
    with pytest.raises(ConfigError, match=r"spec.scorers\[1\].*checkpoint"):
        parse_spec(spec_dict(corpus, ds, scorers=[{"name": "clip", **tiny_clip}, {"name": "clip", "model": "ViT-B-32"}]))
    with pytest.raises(ConfigError, match=r"spec.scorers\[0\]"):
        parse_spec(spec_dict(corpus, ds, scorers=[{"name": "clip", "scorer": "clip", **tiny_clip}]))


def test_scorers_run_as_a_stage_over_this_jobs_parts_only(corpus, tiny_clip, tmp_path, one_torch_thread):
    from jobs.shard_job import ShardOptions, run_shard

    root = str(tmp_path / "ds")
    first = parse_spec(spec_dict(corpus, root, sources=[{"name": "photos", "type": "image_folder",
                                                         "path": str(corpus.folder)}]))
    run_ingest(first, mode="local")
    steps = [{"name": "clip", **tiny_clip, "where": "passes_rules"}]
    second = parse_spec(spec_dict(corpus, root, name="second", scorers=steps,
                                  sources=[{"name": "captions", "type": "manifest", "path": str(corpus.manifest_jsonl)}]))
    assert second.job_id == parse_spec({**second.to_dict(), "scorers": []}).job_id
    summary = run_ingest(second, mode="local")
    ds = Dataset(root)

    scored = catalog.query(ds, "SELECT s.job_id, s.passes_rules, c.clip_error FROM score_clip c "
                               "JOIN samples s USING (sample_id)").to_pylist()
    wanted = catalog.query(ds, f"SELECT count(*) AS n FROM samples WHERE passes_rules AND job_id = '{second.job_id}'")
    assert {r["job_id"] for r in scored} == {second.job_id} and all(r["passes_rules"] for r in scored)
    assert len(scored) == wanted.to_pylist()[0]["n"] > 0
    s = storage.read_json(ds.job_manifest(second.job_id))["summary"]
    assert [st["name"] for st in s["stages"]] == ["list", "ingest", "score:clip", "dedup"]
    (score,) = s["details"]["scores"]
    assert score["scored"] == len(scored) and score["parts_skipped"] == 0
    score_manifest = storage.read_json(ds.job_manifest(score["job_id"]))
    assert score_manifest["summary"]["inputs"] == len(scored)
    assert score_manifest["summary"]["rejected_by_reason"] == {
        f"clip/{e}": sum(r["clip_error"] == e for r in scored) for e in {r["clip_error"] for r in scored} if e}
    assert format_summary(score_manifest)[0].startswith(f"score job {score['job_id']} (succeeded): {len(scored)} inputs")

    # The scores are usable by a shard selection right away ...
    with_score = catalog.query(ds, "SELECT count(*) AS n FROM samples WHERE clip_score IS NOT NULL").to_pylist()[0]["n"]
    out = str(tmp_path / "shards")
    shard = run_shard(root, ShardOptions(out=out, where="clip_score IS NOT NULL"))
    assert shard.packed + shard.oversized == with_score > 0
    shard_manifest = storage.read_json(storage.join(out, "manifest.json"))
    assert shard_manifest["summary"]["accepted"] == shard.packed and shard_manifest["summary"]["inputs"] == with_score
    assert format_summary(shard_manifest)[0].startswith(f"shard job {shard.shard_set} (succeeded)")

    # ... and a re-run of the job scores nothing again.
    files = {f: os.stat(f).st_mtime_ns for f in ds.score_files("clip")}
    again = run_ingest(second, mode="local")
    (score,) = again.report["details"]["scores"]
    assert score["parts_skipped"] == score["parts"] > 0
    assert {f: os.stat(f).st_mtime_ns for f in ds.score_files("clip")} == files


def test_retrying_fetch_timeouts_fetches_only_those_urls(tmp_path):
    import asyncio
    import json

    from aiohttp import web

    from pipeline.sources.fetch_testing import LoopbackServer
    from tests.test_web_urls import IMAGES

    class Slow:  # /slow/N times out until the server is told to answer
        def __init__(self):
            self.slow = True

        async def __call__(self, request):
            if request.path.startswith("/slow/") and self.slow:
                await asyncio.sleep(1.0)
            return web.Response(body=IMAGES[f"/img/{request.path.rsplit('/', 1)[1]}.jpg"], content_type="image/jpeg")

    with LoopbackServer(Slow()) as srv:
        paths = [f"/{'slow' if i % 3 == 0 else 'img'}/{i}" for i in range(8)]
        urls = tmp_path / "urls.jsonl"
        urls.write_text("\n".join(json.dumps({"url": srv.url(p), "caption": f"caption {p}"}) for p in paths))
        spec = parse_spec({"name": "web", "dataset": str(tmp_path / "ds"), "partition_size": 4, "sources": [
            {"name": "web", "type": "web_urls", "path": str(urls), "timeout_s": 0.3, "retries": 0}]})
        first = run_ingest(spec, mode="local")
        assert first.rejects_by_reason == {"fetch/timeout": 3} and first.samples == 5
        hits = dict(srv.hits)
        srv.handler.slow = False
        again = run_ingest(spec, mode="local", retry_rejects=["fetch/timeout"])
        fetched = {p: srv.hits[p] - hits.get(p, 0) for p in paths}
        assert fetched == {p: int(p.startswith("/slow/")) for p in paths}  # nothing else fetched again
        assert again.samples == 8 and again.rejects == 0 and again.retry_passes == 2
        samples, rejects = rows(Dataset(spec.dataset))
        assert set(samples) == {srv.url(p) for p in paths} and not rejects
