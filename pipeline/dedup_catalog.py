"""Dedup over the whole dataset, every job included, written as one table.

It runs after each ingestion job, reading only the columns dedup needs from the
catalog (never the media), so a second job is deduplicated against the first. The
representative precedence is the job order recorded in ``dataset.json``: samples of
an earlier job stay representatives, and shards made before remain valid.
"""
from __future__ import annotations

import pyarrow as pa

from filters.dedup import DedupConfig, dedup_table
from pipeline import catalog, storage
from pipeline.dataset import Dataset


def dedup_dataset(ds: Dataset, config: DedupConfig) -> dict:
    order = ds.job_order()
    with catalog.connect(ds) as con:
        table = con.sql(
            """SELECT sample_id, job_id,
                      list_transform(media, lambda m: m.sha256) AS media_sha256,
                      list_transform(media, lambda m: m.phash) AS media_phash,
                      text
               FROM samples_base ORDER BY sample_id"""
        ).to_arrow_table()
    job_ids = table.column("job_id").to_pylist()
    unknown = sorted(set(job_ids) - set(order))
    if unknown:
        raise RuntimeError(f"catalog has samples of jobs not recorded in dataset.json: {unknown}")
    order_key = pa.array([order[j] for j in job_ids], pa.int64())
    table = table.drop_columns(["job_id"]).append_column("order_key", order_key)
    result = dedup_table(table, config)
    storage.atomic_write_parquet(ds.dedup_file, result)
    dup = result.column("is_duplicate").to_pylist()
    return {"samples": len(dup), "duplicates": sum(dup)}
