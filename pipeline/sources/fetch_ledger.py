"""The dead-URL ledger: URLs that a dataset's earlier jobs failed to fetch.

No separate file is kept: the ``rejects`` table already holds every failed fetch
(stage ``fetch``, ``input_ref`` = the URL, the reason). A new job over the same URL
list into the same dataset reads it, so dead links are not hammered again on every
run; ``retry_dead: true`` fetches them anyway.

Excluded from the ledger: the running job's own rejects (a partition redone after a
crash must give the same answer as the first time) and URLs that some job did fetch
(they are in ``samples``: a retry_dead run revived them).
"""
from __future__ import annotations

from dataclasses import dataclass

from pipeline import catalog
from pipeline.dataset import Dataset


@dataclass(frozen=True)
class DeadUrl:
    reason: str  # the original failure, e.g. "http_404"
    job_id: str  # a job that recorded it


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def load_dead_urls(dataset: Dataset, current_job: str) -> dict[str, DeadUrl]:
    """URL -> why it is known dead, from the dataset's rejects (empty for a new dataset)."""
    if not dataset.reject_files():
        return {}
    # known_dead rows carry the original reason in their detail; prefer a row with a real reason.
    sql = f"""
        SELECT input_ref AS url,
               coalesce(min(reason) FILTER (WHERE reason <> 'known_dead'), 'known_dead') AS reason,
               min(job_id) AS job_id
        FROM rejects
        WHERE stage = 'fetch' AND job_id <> {_sql_str(current_job)}
          AND input_ref NOT IN (SELECT input_ref FROM samples_base)
        GROUP BY input_ref
    """
    rows = catalog.query(dataset, sql).to_pylist()
    return {r["url"]: DeadUrl(r["reason"], r["job_id"]) for r in rows}
