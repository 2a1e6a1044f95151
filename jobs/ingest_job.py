"""``tessera ingest``: an ingestion job, resumable, on Ray or in-process.

1. register the job in the dataset (its dedup precedence) and check the tokenizer,
2. list every source's partitions; skip those whose completion marker exists,
3. run the ingest worker over the rest (Ray Data actors, progress bar),
4. dedup the whole dataset, 5. write the job manifest and print a summary.
"""
from __future__ import annotations

import collections
import datetime as dt
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata

from jobs.spec import IngestSpec
from model.tokenizer import BYTE_LEVEL, build_tokenizer, fingerprint, load_tokenizer
from pipeline import storage
from pipeline.dataset import Dataset
from pipeline.dedup_catalog import dedup_dataset
from pipeline.executor import map_partitions
from pipeline.ingest import IngestWorker

PACKAGES = ("ray", "pyarrow", "duckdb", "pillow", "transformers", "tokenizers", "datasketch", "numpy")


@dataclass
class IngestSummary:
    job_id: str
    partitions: int
    partitions_skipped: int
    inputs: int = 0
    samples: int = 0
    rejects: int = 0
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    dataset_samples: int = 0
    dataset_duplicates: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    worker_seconds: dict[str, float] = field(default_factory=dict)  # summed over workers, per step

    def lines(self) -> list[str]:
        out = [
            f"job {self.job_id}: {self.partitions} partitions ({self.partitions_skipped} already done)",
            f"  inputs {self.inputs}  samples {self.samples}  rejects {self.rejects}",
        ]
        for reason, n in sorted(self.rejects_by_reason.items(), key=lambda kv: -kv[1]):
            out.append(f"    rejected {reason}: {n}")
        out.append(f"  dataset: {self.dataset_samples} samples, {self.dataset_duplicates} marked duplicate")
        out.append("  time: " + ", ".join(f"{k} {v:.1f}s" for k, v in self.seconds.items()))
        if self.worker_seconds:
            out.append("  worker time by step: " + ", ".join(f"{k} {v:.1f}s" for k, v in self.worker_seconds.items()))
        return out


def resolve_tokenizer(ref: str, ds: Dataset) -> str:
    """A local tokenizer directory for ``ref``; the built-in one is saved beside the catalog."""
    if ref != BYTE_LEVEL:
        return ref
    local = storage.local_path(ds.uri("tokenizer"))
    target = local or os.path.join(os.path.expanduser("~/.cache/tessera"), "byte-level-tokenizer")
    if not os.path.exists(os.path.join(target, "tokenizer_config.json")):
        build_tokenizer(target)
    return target


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def run_ingest(spec: IngestSpec, *, mode: str = "ray", address: str | None = None) -> IngestSummary:
    t0 = time.perf_counter()
    ds = Dataset(spec.dataset)
    job_id = spec.job_id
    tokenizer_dir = resolve_tokenizer(spec.tokenizer, ds)
    ds.register_job(job_id, fingerprint(load_tokenizer(tokenizer_dir)), spec.tokenizer, asdict(spec.tiling))
    manifest = {
        "job_id": job_id, "kind": "ingest", "spec": spec.to_dict(), "versions": _versions(),
        "status": "running", "started_at": dt.datetime.now(dt.timezone.utc).isoformat(),
    }
    storage.atomic_write_json(ds.job_manifest(job_id), manifest)

    partitions = [p for source in spec.sources for p in source.build().partitions(spec.partition_size)]
    done = ds.done_partitions(job_id)
    todo = [p for p in partitions if p.partition_id not in done]
    summary = IngestSummary(job_id, len(partitions), len(partitions) - len(todo))
    t_list = time.perf_counter()

    rejected = 0

    def show(result, bar):
        nonlocal rejected
        rejected += result.rejects
        bar.set_postfix(rejects=rejected, refresh=False)

    worker_kwargs = {"spec_dict": spec.to_dict(), "tokenizer_dir": tokenizer_dir, "job_id": job_id}
    for _ in map_partitions(
        IngestWorker, worker_kwargs, todo, mode=mode, address=address, workers=spec.workers,
        desc=f"ingest {spec.name}", on_result=show,
    ):
        pass
    t_ingest = time.perf_counter()

    # Counts come from every partition's marker, so a resumed job reports the whole job.
    reasons: collections.Counter = collections.Counter()
    step_seconds: collections.Counter = collections.Counter()
    for pid in sorted(ds.done_partitions(job_id)):
        marker = storage.read_json(ds.partition_marker(job_id, pid))
        summary.inputs += marker["inputs"]
        summary.samples += marker["samples"]
        summary.rejects += marker["rejects"]
        reasons.update(marker["rejects_by_reason"])
        step_seconds.update(marker.get("step_seconds", {}))
    summary.rejects_by_reason = dict(reasons)
    summary.worker_seconds = {k: round(v, 3) for k, v in step_seconds.items()}

    dedup_counts = dedup_dataset(ds, spec.dedup)
    summary.dataset_samples, summary.dataset_duplicates = dedup_counts["samples"], dedup_counts["duplicates"]
    t_end = time.perf_counter()
    summary.seconds = {
        "list": t_list - t0, "ingest": t_ingest - t_list, "dedup": t_end - t_ingest, "total": t_end - t0,
    }
    manifest.update(
        status="succeeded", finished_at=dt.datetime.now(dt.timezone.utc).isoformat(),
        counts={k: v for k, v in summary.__dict__.items() if k not in ("job_id", "seconds")},
        timings=summary.seconds,
    )
    storage.atomic_write_json(ds.job_manifest(job_id), manifest)
    return summary
