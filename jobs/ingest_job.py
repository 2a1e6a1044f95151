"""``tessera ingest``: an ingestion job, resumable, on Ray or in-process.

1. register the job in the dataset (its dedup precedence) and check the tokenizer,
2. list every source's partitions; skip those whose completion marker exists,
3. run the ingest worker over the rest (Ray Data actors, progress bar), plus retry
   passes over finished partitions' rejects when asked (``--retry-rejects``),
4. run the spec's scorers over this job's samples parts (``tessera score``'s runner),
5. dedup the whole dataset, 6. write the job manifest with its summary (``jobs/summary.py``).
"""
from __future__ import annotations

import collections
import functools
import datetime as dt
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata

from schemas.dedup import SIGNALS
from jobs.score_job import ScoreSpec
from jobs.score_job import run_step as run_score_step
from jobs.spec import IngestSpec, score_steps
from jobs.summary import JobSummary, format_summary
from model.tokenizer import BYTE_LEVEL, build_tokenizer, fingerprint, load_counting_tokenizer
from pipeline import storage
from pipeline.dataset import Dataset
from pipeline.dedup_catalog import dedup_dataset
from pipeline.executor import map_partitions
from pipeline.ingest import IngestWorker
from pipeline.partition_giveup import give_up_partition
from pipeline.ingest_retry import plan_retries

PACKAGES = ("ray", "pyarrow", "duckdb", "pillow", "transformers", "tokenizers", "datasketch", "numpy")


@dataclass
class IngestSummary:
    """What ``run_ingest`` returns; ``report`` is the shared summary stored as ``manifest["summary"]``."""

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
    retried: int = 0  # inputs that needed more than one try
    retry_passes: int = 0  # partitions whose rejects were run again (--retry-rejects)
    report: dict = field(default_factory=dict, repr=False)

    def lines(self) -> list[str]:
        return format_summary({"kind": "ingest", "job_id": self.job_id, "status": "succeeded", "summary": self.report})


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


def duplicates_by_signal(ds: Dataset) -> dict[str, int]:
    """Per dedup signal, the samples it puts in another sample's cluster (not its representative)."""
    from pipeline import catalog

    counts = ", ".join(f"count(*) FILTER (WHERE {s}_cluster IS NOT NULL AND {s}_cluster <> sample_id) AS {s}"
                       for s in SIGNALS)
    return catalog.query(ds, f"SELECT {counts} FROM dedup").to_pylist()[0]


def run_ingest(spec: IngestSpec, *, mode: str = "ray", address: str | None = None,
               retry_rejects: list[str] | None = None) -> IngestSummary:
    """Run (or resume) the job; ``retry_rejects``: stage/reason patterns of rejects to run again."""
    t0 = time.perf_counter()
    ds = Dataset(spec.dataset)
    job_id = spec.job_id
    report = JobSummary("ingest", job_id)
    tokenizer_dir = resolve_tokenizer(spec.tokenizer, ds)
    # Same fingerprint as load_tokenizer (checked), without importing transformers when recorded.
    ds.register_job(job_id, fingerprint(load_counting_tokenizer(tokenizer_dir)), spec.tokenizer, asdict(spec.tiling))
    manifest = {
        "job_id": job_id, "kind": "ingest", "spec": spec.to_dict(), "versions": _versions(),
        "status": "running", "started_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "retry_rejects": list(retry_rejects or []),
    }
    storage.atomic_write_json(ds.job_manifest(job_id), manifest)

    with report.stage("list", unit="partitions") as st:
        partitions = [p for source in spec.sources for p in source.build().partitions(spec.partition_size)]
        done = ds.done_partitions(job_id)
        todo = [p for p in partitions if p.partition_id not in done]
        # Retry passes for finished partitions (and cleaning passes after an interrupted one).
        retries = plan_retries(ds, job_id, partitions, list(retry_rejects or []))
        st.items, st.skipped = len(partitions), len(partitions) - len(todo)
        if retry_rejects:
            st.note = f"{sum(len(r.refs) for r in retries)} rejects to retry in {len(retries)} partitions"
    summary = IngestSummary(job_id, len(partitions), len(partitions) - len(todo), retry_passes=len(retries))

    with report.stage("ingest", unit="partitions") as st:
        st.items, st.has_bar = len(todo) + len(retries), bool(todo or retries)
        st.error_label = "rejected"  # inputs that became reject rows; the job still succeeded

        def show(result, bar):
            st.errors += result.rejects
            bar.set_postfix(rejected=st.errors, refresh=False)

        worker_kwargs = {"spec_dict": spec.to_dict(), "tokenizer_dir": tokenizer_dir, "job_id": job_id}
        for _ in map_partitions(
            IngestWorker, worker_kwargs, [*todo, *retries], mode=mode, address=address, workers=spec.workers,
            desc=f"ingest {spec.name}", on_result=show, partition_timeout_s=spec.partition_timeout_s,
            on_give_up=functools.partial(give_up_partition, ds, job_id),  # timed out on every attempt
        ):
            pass

    # Scorers named in the spec, over this job's samples parts; their markers make a re-run skip them.
    score_spec = ScoreSpec(steps=score_steps(spec), workers=spec.workers)
    scores = []
    for step in score_spec.steps:
        with report.stage(f"score:{step.scorer}", unit="part", quiet=True) as st:
            result = run_score_step(ds, step, score_spec, mode=mode, address=address, only_job=job_id)
            st.items, st.skipped, st.errors = result["parts"], result["parts_skipped"], result["errors"]
        scores.append({k: v for k, v in result.items() if k != "summary"})

    # Counts come from every partition's marker, so a resumed job reports the whole job.
    reasons: collections.Counter = collections.Counter()
    step_seconds: collections.Counter = collections.Counter()
    for pid in sorted(ds.done_partitions(job_id)):
        marker = storage.read_json(ds.partition_marker(job_id, pid))
        summary.inputs += marker["inputs"]
        summary.samples += marker["samples"]
        summary.rejects += marker["rejects"]
        summary.retried += marker.get("retried", 0)
        reasons.update(marker["rejects_by_reason"])
        step_seconds.update(marker.get("step_seconds", {}))
    summary.rejects_by_reason = dict(reasons)
    summary.worker_seconds = {k: round(v, 3) for k, v in step_seconds.items()}

    with report.stage("dedup", unit="samples") as st:
        dedup_counts = dedup_dataset(ds, spec.dedup)
        st.items, st.note = dedup_counts["samples"], f"{dedup_counts['duplicates']} duplicates"
    summary.dataset_samples, summary.dataset_duplicates = dedup_counts["samples"], dedup_counts["duplicates"]
    summary.seconds = {st.name: st.seconds for st in report.stages}
    summary.seconds["total"] = time.perf_counter() - t0

    report.inputs, report.accepted, report.rejected_by_reason = summary.inputs, summary.samples, summary.rejects_by_reason
    report.duplicates, report.duplicates_by_signal = summary.dataset_duplicates, duplicates_by_signal(ds)
    report.worker_seconds = summary.worker_seconds
    report.details = {"partitions": summary.partitions, "partitions_skipped": summary.partitions_skipped,
                      "retried_inputs": summary.retried, "retry_passes": len(retries),
                      "dataset_samples": summary.dataset_samples, "scores": scores}
    summary.report = report.to_dict()
    manifest.update(
        status="succeeded", finished_at=dt.datetime.now(dt.timezone.utc).isoformat(),
        counts={k: v for k, v in summary.__dict__.items() if k not in ("job_id", "seconds", "report")},
        timings=summary.seconds, summary=summary.report,
    )
    storage.atomic_write_json(ds.job_manifest(job_id), manifest)
    return summary
