"""Ingest one partition: read its raw inputs, run the steps, commit the results.

A partition's samples and rejects are written atomically, and only then its
completion marker. A run that dies anywhere leaves either a finished partition
(marker present: skipped on re-run) or one that is redone whole, overwriting the
same files with the same rows, since sample ids are deterministic. Every input thus
ends up exactly once, as a sample or as a reject.
"""
from __future__ import annotations

import collections
import time
from dataclasses import dataclass

from pipeline import storage
from pipeline.dataset import Dataset
from pipeline.sources.base import Partition
from pipeline.steps import ApplyRules, BuildSample, DecodeImages, Rejected, StoreMedia, run_steps
from schemas import Reject, rejects_to_table, samples_to_table


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

    def as_dict(self) -> dict:
        return self.__dict__.copy()


class IngestWorker:
    """Built once per worker process (the tokenizer loads once), called per partition."""

    def __init__(self, spec_dict: dict, tokenizer_dir: str, job_id: str):
        from jobs.spec import parse_spec  # here, not at import: workers rebuild the spec

        self.spec = parse_spec(spec_dict)
        self.job_id = job_id
        self.dataset = Dataset(self.spec.dataset)
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

    def __call__(self, partition: Partition) -> PartitionResult:
        start = time.perf_counter()
        samples, rejects = [], []
        step_seconds: dict[str, float] = {"read": 0.0}
        inputs = iter(self.sources[partition.source].read(partition))
        while True:
            t_read = time.perf_counter()
            raw = next(inputs, None)
            step_seconds["read"] += time.perf_counter() - t_read
            if raw is None:
                break
            try:
                samples.append(run_steps(raw, self.job_id, self.steps, step_seconds))
            except Rejected as rej:
                rejects.append(Reject(raw.input_ref, raw.source, self.job_id, rej.stage, rej.reason, rej.detail))
        ds, pid = self.dataset, partition.partition_id
        t_write = time.perf_counter()
        storage.atomic_write_parquet(ds.samples_part(self.job_id, pid), samples_to_table(samples))
        storage.atomic_write_parquet(ds.rejects_part(self.job_id, pid), rejects_to_table(rejects))
        step_seconds["write"] = time.perf_counter() - t_write
        result = PartitionResult(
            partition_id=pid, source=partition.source, inputs=len(samples) + len(rejects), samples=len(samples),
            rejects=len(rejects), rejects_by_reason=dict(collections.Counter(f"{r.stage}/{r.reason}" for r in rejects)),
            seconds=round(time.perf_counter() - start, 3),
            step_seconds={k: round(v, 4) for k, v in step_seconds.items()},
        )
        storage.atomic_write_json(ds.partition_marker(self.job_id, pid), result.as_dict())
        return result
