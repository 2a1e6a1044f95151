"""The ingest result of a partition the executor gave up on: its inputs become a reject.

A partition that overran its time limit (or killed its worker) on every attempt is
committed like any other, so the job ends and a re-run skips it: an empty samples part,
a rejects part with one row of stage ``partition`` and reason ``timeout`` or
``worker_lost``, then the marker. Which inputs it held is not known without reading it
(the read may be what hangs), so the row's ref follows the reader-failure convention,
``PARTITION@0``: nothing of this partition from position 0 on was ingested, and
``tessera ingest --retry-rejects partition/timeout`` runs it again. The detail names the
partition's arguments (the paths or row ranges it covers).
"""
from __future__ import annotations

from pipeline import storage
from pipeline.dataset import Dataset
from pipeline.ingest import PartitionResult, read_error_ref, reasons_of
from pipeline.sources.base import Partition
from schemas import Reject, rejects_to_table, samples_to_table

MAX_DETAIL = 4000


def give_up_partition(ds: Dataset, job_id: str, item, reason: str, detail: str) -> PartitionResult:
    if not isinstance(item, Partition):
        # A retry pass over a finished partition (pipeline/ingest_retry.py): leave it as it
        # was committed; a later run of the job cleans up after a pass cut short.
        marker = storage.read_json(ds.partition_marker(job_id, item.partition.partition_id))
        return PartitionResult(**{**marker, "retry_passes": tuple(marker.get("retry_passes", ()))})
    pid = item.partition_id
    detail = f"{detail}; partition arguments: {item.args!r}"[:MAX_DETAIL]
    rejects = [Reject(read_error_ref(pid, 0), item.source, job_id, "partition", reason, detail)]
    # Overwrite whatever an abandoned attempt may have committed before it was stopped.
    storage.atomic_write_parquet(ds.samples_part(job_id, pid), samples_to_table([]))
    storage.atomic_write_parquet(ds.rejects_part(job_id, pid), rejects_to_table(rejects))
    result = PartitionResult(
        partition_id=pid, source=item.source, inputs=1, samples=0, rejects=1,
        rejects_by_reason=reasons_of(rejects), seconds=0.0, step_seconds={},
    )
    storage.atomic_write_json(ds.partition_marker(job_id, pid), result.as_dict())
    return result
