"""Ingest one partition: read its raw inputs, run the steps, commit the results.

A partition's samples and rejects are written atomically, and only then its
completion marker. A run that dies anywhere leaves either a finished partition
(marker present: skipped on re-run) or one that is redone whole, overwriting the
same files with the same rows, since sample ids are deterministic. Every input thus
ends up exactly once, as a sample or as a reject.

One bad input never loses its partition. A step that raises something other than
``Rejected`` (an OSError on a remote store, a bug an odd input triggers) is retried
on that input alone, ``sample_retries`` times with backoff, then the input becomes a
reject ``STEP/error``. A source reader that raises is reopened and fast-forwarded past
what it already gave; if it keeps failing at the same place, the partition ends there
with one ``read/error`` reject saying how far it got.

A retry pass (``RetryRejects``) re-runs only some rejected inputs of a finished
partition, in place: see ``pipeline/ingest_retry.py``.
"""
from __future__ import annotations

import collections
import time
from collections.abc import Iterator
from dataclasses import dataclass

from pipeline import storage
from pipeline.dataset import Dataset
from pipeline.sources.base import Partition, RawInput
from pipeline.steps import ApplyRules, BuildSample, DecodeImages, Rejected, StoreMedia, run_steps
from schemas import Reject, Sample, rejects_to_table, samples_to_table


@dataclass
class PartitionResult:
    partition_id: str
    source: str
    inputs: int
    samples: int
    rejects: int
    rejects_by_reason: dict[str, int]
    seconds: float
    step_seconds: dict[str, float]  # where the time went: read + each step
    retried: int = 0  # inputs (or reader reopenings) that needed more than one try
    retry_passes: tuple[str, ...] = ()  # RetryRejects tags applied to this partition since

    def as_dict(self) -> dict:
        d = self.__dict__.copy()
        d["retry_passes"] = list(self.retry_passes)
        return d


def transient(rej: Rejected) -> bool:
    """A reject ``run_steps`` made from an unexpected exception (worth another try)."""
    return rej.reason == "error" and rej.__cause__ is not None and not isinstance(rej.__cause__, Rejected)


class IngestWorker:
    """Built once per worker process (the tokenizer loads once), called per partition."""

    def __init__(self, spec_dict: dict, tokenizer_dir: str, job_id: str):
        from jobs.spec import parse_spec  # here, not at import: workers rebuild the spec

        self.spec = parse_spec(spec_dict)
        self.job_id = job_id
        self.dataset = Dataset(self.spec.dataset)
        self.retries, self.backoff_s = self.spec.sample_retries, self.spec.retry_backoff_s
        self.sources = {s.name: s.build() for s in self.spec.sources}
        for source in self.sources.values():  # sources that consult the dataset: web_urls' dead-URL ledger
            if hasattr(source, "attach"):
                source.attach(self.dataset, job_id)
        self.steps = [
            DecodeImages(self.spec.image.max_pixels, self.spec.image.min_side),
            StoreMedia(self.dataset, self.spec.tiling),
            BuildSample(tokenizer_dir, self.spec.tiling),
            ApplyRules(self.spec.filters),
        ]

    def __call__(self, item) -> PartitionResult:
        from pipeline.ingest_retry import RetryRejects, retry_partition

        if isinstance(item, RetryRejects):
            return retry_partition(self, item)
        return self.ingest(item)

    # reading -------------------------------------------------------------------
    def _wait(self, attempt: int) -> None:
        if self.backoff_s:
            time.sleep(self.backoff_s * 2 ** (attempt - 1))

    def read(self, partition: Partition, counters: collections.Counter,
             refs: frozenset[str] | None = None, tail_from: int | None = None) -> Iterator[RawInput]:
        """The partition's inputs, surviving a reader that raises (reopen, skip what was given).

        ``refs``: only the inputs with these refs (a retry pass), and every input after
        position ``tail_from`` (those an earlier reader failure never reached). A source
        with ``read_refs(partition, refs)`` reads only those; others are read whole.
        """
        source = self.sources[partition.source]
        narrow = refs is not None and tail_from is None and hasattr(source, "read_refs")
        given, attempt, seen = 0, 0, set()
        while True:
            position = 0
            try:
                for raw in (source.read_refs(partition, refs) if narrow else source.read(partition)):
                    position += 1
                    if position <= given:  # fast-forward after a reopen
                        continue
                    given, attempt = position, 0
                    if refs is None or narrow or raw.input_ref in refs or (tail_from is not None and position > tail_from):
                        seen.add(raw.input_ref)
                        yield raw
                return
            except Exception as exc:  # a source should yield failures, but remote reads can still raise
                attempt += 1
                counters["retried"] += 1
                if attempt <= self.retries:
                    self._wait(attempt)
                    continue
                detail = f"{type(exc).__name__}: {exc} (after {attempt} attempts)"
                if narrow:  # the refs asked for are known: each one not reached is a reject
                    for ref in sorted(refs - seen):
                        yield RawInput(ref, partition.source, failure=("read", "error", detail))
                    return
                detail += f"; the reader got {given} inputs of this partition, later ones were not read"
                yield RawInput(read_error_ref(partition.partition_id, given), partition.source,
                               failure=("read", "error", detail))
                return

    # processing ----------------------------------------------------------------
    def process(self, raw: RawInput, step_seconds: dict, counters: collections.Counter) -> Sample | Reject:
        """One input through the steps: a sample, or a reject; transient errors tried again."""
        attempt = 0
        while True:
            try:
                return run_steps(raw, self.job_id, self.steps, step_seconds)
            except Rejected as rej:
                if transient(rej) and attempt < self.retries:
                    attempt += 1
                    counters["retried"] += attempt == 1
                    self._wait(attempt)
                    continue
                detail = rej.detail + (f" (after {attempt + 1} attempts)" if attempt else "")
                return Reject(raw.input_ref, raw.source, self.job_id, rej.stage, rej.reason, detail)

    def run(self, inputs: Iterator[RawInput], step_seconds: dict, counters: collections.Counter):
        samples, rejects = [], []
        while True:
            t_read = time.perf_counter()
            raw = next(inputs, None)
            step_seconds["read"] = step_seconds.get("read", 0.0) + time.perf_counter() - t_read
            if raw is None:
                return samples, rejects
            out = self.process(raw, step_seconds, counters)
            (rejects if isinstance(out, Reject) else samples).append(out)

    def ingest(self, partition: Partition) -> PartitionResult:
        start = time.perf_counter()
        step_seconds: dict[str, float] = {"read": 0.0}
        counters: collections.Counter = collections.Counter()
        samples, rejects = self.run(self.read(partition, counters), step_seconds, counters)
        ds, pid = self.dataset, partition.partition_id
        t_write = time.perf_counter()
        storage.atomic_write_parquet(ds.samples_part(self.job_id, pid), samples_to_table(samples))
        storage.atomic_write_parquet(ds.rejects_part(self.job_id, pid), rejects_to_table(rejects))
        step_seconds["write"] = time.perf_counter() - t_write
        result = PartitionResult(
            partition_id=pid, source=partition.source, inputs=len(samples) + len(rejects), samples=len(samples),
            rejects=len(rejects), rejects_by_reason=reasons_of(rejects),
            seconds=round(time.perf_counter() - start, 3),
            step_seconds={k: round(v, 4) for k, v in step_seconds.items()}, retried=counters["retried"],
        )
        storage.atomic_write_json(ds.partition_marker(self.job_id, pid), result.as_dict())
        return result


def read_error_ref(partition_id: str, position: int) -> str:
    """The ref of a reader failure: no input's own ref is known past that point."""
    return f"{partition_id}@{position}"


def reasons_of(rejects: list[Reject]) -> dict[str, int]:
    return dict(collections.Counter(f"{r.stage}/{r.reason}" for r in rejects))
