"""Retry passes: re-run only some rejected inputs of a finished partition, in place.

``tessera ingest SPEC --retry-rejects fetch/timeout`` picks this job's rejects whose
``stage/reason`` match (``plan_retries``) and gives the worker one ``RetryRejects``
per partition. The worker reads the partition (a source with ``read_refs(partition,
refs)`` reads only those inputs; any other is read whole and only those inputs go
through the steps: accepted samples are neither redone nor rewritten) and commits in
this order:

1. the retried inputs that now pass: a new samples part ``PARTITION.retry-TAG.parquet``
   (TAG = digest of the retried refs; the catalog views read every part of a job);
2. the partition's rejects part, rewritten: the old rows minus the inputs this pass
   ran (and minus any ref an earlier retry part already holds), plus the ones that
   failed again;
3. the partition marker, recounted from the parts.

Exactly once: a crash after 1 leaves an input in both tables until the next pass on
that partition. Re-running the same command selects the same refs, hence the same
TAG, and overwrites the same part before finishing 2 and 3; any other ingest run of
the job schedules a cleaning pass (no refs) for such a partition (``stale``).
"""
from __future__ import annotations

import collections
import fnmatch
import hashlib
import time
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from pipeline import storage
from pipeline.dataset import Dataset
from pipeline.ingest import PartitionResult, read_error_ref
from pipeline.sources.base import Partition
from schemas import rejects_to_table, samples_to_table

RETRY_INFIX = ".retry-"


@dataclass(frozen=True)
class RetryRejects:
    partition: Partition
    refs: tuple[str, ...]  # input refs to run again, sorted; empty: only clean stale reject rows

    @property
    def tag(self) -> str:
        return hashlib.sha256("\n".join(self.refs).encode()).hexdigest()[:10]


def _retry_parts(ds: Dataset, job_id: str, pid: str) -> list[str]:
    return storage.glob(ds.uri("catalog", "samples", job_id, f"{pid}{RETRY_INFIX}*.parquet"))


def _refs_in(files: list[str]) -> set[str]:
    return {r for f in files for r in storage.read_parquet(f, ["input_ref"]).column("input_ref").to_pylist()}


def matches(stage: str, reason: str, patterns: list[str]) -> bool:
    """``stage/reason`` against patterns like ``fetch/timeout``, ``timeout`` (any stage), ``fetch/*``."""
    key = f"{stage}/{reason}"
    return any(fnmatch.fnmatchcase(key, p if "/" in p else f"*/{p}") for p in patterns)


def plan_retries(ds: Dataset, job_id: str, partitions: list[Partition], patterns: list[str]) -> list[RetryRejects]:
    """Per finished partition: the rejected refs to run again, and partitions with stale rows."""
    done = ds.done_partitions(job_id)
    # One listing for the job, not one per partition: with no patterns (every plain run),
    # only partitions that have a retry part can need a (cleaning) pass.
    retry_parts: dict[str, list[str]] = collections.defaultdict(list)
    for f in storage.glob(ds.uri("catalog", "samples", job_id, f"*{RETRY_INFIX}*.parquet")):
        retry_parts[f.rsplit("/", 1)[-1].rsplit(RETRY_INFIX, 1)[0]].append(f)
    work = []
    for p in partitions:
        uri = ds.rejects_part(job_id, p.partition_id)
        if p.partition_id not in done or not (patterns or p.partition_id in retry_parts) or not storage.exists(uri):
            continue
        rejects = storage.read_parquet(uri, ["input_ref", "stage", "reason"]).to_pylist()
        refs = sorted({r["input_ref"] for r in rejects if patterns and matches(r["stage"], r["reason"], patterns)})
        stale = _refs_in(retry_parts.get(p.partition_id, [])) & {r["input_ref"] for r in rejects}
        if refs or stale:
            work.append(RetryRejects(p, tuple(refs)))
    return work


def retry_partition(worker, work: RetryRejects) -> PartitionResult:
    """Run one retry pass (``worker`` is the job's ``IngestWorker``) and commit it as above."""
    start = time.perf_counter()
    ds, job, pid = worker.dataset, worker.job_id, work.partition.partition_id
    own_part = ds.samples_part(job, f"{pid}{RETRY_INFIX}{work.tag}")
    earlier = [f for f in _retry_parts(ds, job, pid) if f.rsplit("/", 1)[-1] != own_part.rsplit("/", 1)[-1]]
    accepted_before = _refs_in(earlier)
    todo = frozenset(work.refs) - accepted_before
    # Reader-failure refs (PARTITION@N) among them: the pass reads on from the earliest N.
    read_failures = {r: n for r in todo if (n := _position(r, pid)) >= 0}
    counters: collections.Counter = collections.Counter()
    step_seconds: dict[str, float] = {"read": 0.0}
    samples, rejects = [], []
    if todo:
        inputs = worker.read(work.partition, counters, refs=todo, tail_from=min(read_failures.values(), default=None))
        samples, rejects = worker.run(inputs, step_seconds, counters)
    # Rows superseded: every ref this pass ran (reader-failure rows always: the pass either
    # read past that point or wrote a new one), and refs an earlier retry part accepted.
    ran = {s.input_ref for s in samples} | {r.input_ref for r in rejects} | read_failures.keys()
    gone = pa.array(sorted(ran | accepted_before), pa.string())
    t_write = time.perf_counter()
    if work.refs:
        storage.atomic_write_parquet(own_part, samples_to_table(samples))
    old = storage.read_parquet(ds.rejects_part(job, pid))
    kept = old.filter(pc.invert(pc.is_in(old["input_ref"], gone)))
    schema = rejects_to_table([]).schema
    new = pa.concat_tables([kept.select(schema.names).cast(schema), rejects_to_table(rejects)])
    storage.atomic_write_parquet(ds.rejects_part(job, pid), new)
    step_seconds["write"] = time.perf_counter() - t_write
    return _recount(ds, job, work, new, counters, step_seconds, time.perf_counter() - start)


def _position(ref: str, pid: str) -> int:
    """The position in a reader-failure ref (``PARTITION@N``), or -1 for an input's own ref."""
    head, sep, tail = ref.rpartition("@")
    return int(tail) if sep and tail.isdigit() and ref == read_error_ref(pid, int(tail)) else -1


def _recount(ds: Dataset, job: str, work: RetryRejects, rejects: pa.Table, counters, step_seconds, seconds) -> PartitionResult:
    pid = work.partition.partition_id
    marker = storage.read_json(ds.partition_marker(job, pid))
    n_samples = sum(storage.parquet_rows(f) for f in [ds.samples_part(job, pid), *_retry_parts(ds, job, pid)])
    reasons = collections.Counter(f"{s}/{r}" for s, r in zip(rejects["stage"].to_pylist(), rejects["reason"].to_pylist()))
    steps = collections.Counter(marker.get("step_seconds", {}))
    steps.update(step_seconds)
    passes = list(marker.get("retry_passes", []))
    if work.refs and work.tag not in passes:
        passes.append(work.tag)
    result = PartitionResult(
        partition_id=pid, source=work.partition.source, inputs=n_samples + rejects.num_rows, samples=n_samples,
        rejects=rejects.num_rows, rejects_by_reason=dict(reasons), seconds=round(marker["seconds"] + seconds, 3),
        step_seconds={k: round(v, 4) for k, v in steps.items()}, retried=marker.get("retried", 0) + counters["retried"],
        retry_passes=tuple(passes),
    )
    storage.atomic_write_json(ds.partition_marker(job, pid), result.as_dict())
    return result
