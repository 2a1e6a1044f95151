"""Dedup over the whole dataset, every job included, written as one table.

It runs after each ingestion job, reading only the columns dedup needs from the
catalog (never the media), so a second job is deduplicated against the first. The
representative precedence is the job order recorded in ``dataset.json``: samples of
an earlier job stay representatives, and shards made before remain valid (unless the
config asks for ``representative: best:COLUMN``).

The ``near_embedding`` signal reads the embedding score table (``clip_image_emb`` by
default) part by part and runs semantic dedup out of core: on Ray tasks when Ray is
running (an ingest or score job started it), else in this process.
"""
from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from filters.dedup import DedupConfig, dedup_table
from filters.dedup.semantic import SemDedupConfig, semantic_pairs_from_parts
from pipeline import catalog, storage
from pipeline.dataset import Dataset


class EmbeddingReader:
    """Picklable ``part -> (ids, unit float32 embeddings)`` for one score column; null rows skipped."""

    def __init__(self, column: str):
        self.column = column

    def __call__(self, uri: str) -> tuple[np.ndarray, np.ndarray]:
        t = storage.read_parquet(uri, ["sample_id", self.column])
        t = t.filter(pc.is_valid(t[self.column]))
        if t.num_rows == 0:
            return np.empty(0, dtype=str), np.empty((0, 0), np.float32)
        col = t[self.column].combine_chunks()
        flat = pc.list_flatten(col).to_numpy(zero_copy_only=False).astype(np.float32)
        return np.asarray(t["sample_id"].to_pylist(), dtype=str), flat.reshape(t.num_rows, -1)


def embedding_parts(ds: Dataset, column: str) -> list[str]:
    """Score part files of the scorer whose table has ``column`` (none: no embeddings yet)."""
    folders: dict[str, list[str]] = {}
    for f in ds.score_files():
        folders.setdefault(f.rsplit("/", 2)[-2], []).append(f)
    for files in folders.values():
        fs, path = storage.filesystem(files[0])
        with fs.open(path, "rb") as fh:
            if column in pq.read_schema(fh).names:
                return files
    return []


def _parallel_map():
    """Ray tasks when a Ray job is running in this process, else the builtin map."""
    try:
        import ray
    except ImportError:
        return map
    if not ray.is_initialized():
        return map

    def ray_map(fn, *iterables):
        remote = ray.remote(fn)
        return ray.get([remote.remote(*args) for args in zip(*iterables)])

    return ray_map


def embedding_pairs(ds: Dataset, config: DedupConfig, ids) -> np.ndarray:
    """near_embedding pairs as row indices into ``ids`` (a list or an Arrow array of sample ids)."""
    parts = embedding_parts(ds, config.embedding_column)
    if not parts:
        return np.empty((0, 2), np.int64)
    if not isinstance(ids, list):
        ids = ids.to_pylist()  # only when there are embeddings to compare
    n_rows = sum(storage.parquet_rows(p) for p in parts)
    sem = SemDedupConfig(threshold=config.embedding_threshold, n_clusters=config.embedding_clusters)
    workdir = ds.uri("tmp", f"semdedup-{uuid.uuid4().hex[:12]}")
    try:
        found = semantic_pairs_from_parts(parts, EmbeddingReader(config.embedding_column), n_rows, sem,
                                          workdir, map_fn=_parallel_map())
    finally:
        fs, path = storage.filesystem(workdir)
        if fs.exists(path):
            fs.rm(path, recursive=True)
    index = {sid: i for i, sid in enumerate(ids)}
    rows = [(index[a], index[b]) for a, b in found if a in index and b in index]
    return np.asarray(rows, np.int64).reshape(-1, 2)


def dedup_dataset(ds: Dataset, config: DedupConfig) -> dict:
    order = ds.job_order()
    pref = config.preference_column
    with catalog.connect(ds) as con:
        table = con.sql(
            """SELECT sample_id, job_id,
                      list_transform(media, lambda m: m.sha256) AS media_sha256,
                      list_transform(media, lambda m: m.phash) AS media_phash,
                      text
               FROM samples_base"""
        ).to_arrow_table()  # no ORDER BY: DuckDB's sort of these columns doubled the peak memory
        if pref:
            names = [r[0] for r in con.sql("DESCRIBE samples").fetchall()]
            if pref not in names:
                raise ValueError(f"representative best:{pref}: the samples view has no column {pref!r} "
                                 "(run its scorer first)")
            values = con.sql(f'SELECT sample_id, CAST("{pref}" AS DOUBLE) AS preference FROM samples')
            values = values.to_arrow_table()
            at = pc.index_in(table.column("sample_id"), value_set=values.column("sample_id"))
            table = table.append_column("preference", pc.take(values.column("preference"), at))
    # Arrow kernels, not Python lists: at 1M samples each per-row list costs ~100 MB.
    jobs = list(order)
    position = pc.index_in(table.column("job_id"), value_set=pa.array(jobs, pa.string()))
    if position.null_count:
        unknown = sorted(set(pc.unique(pc.filter(table.column("job_id"), pc.is_null(position))).to_pylist()))
        raise RuntimeError(f"catalog has samples of jobs not recorded in dataset.json: {unknown}")
    order_key = pc.take(pa.array([order[j] for j in jobs], pa.int64()), position)
    table = table.drop_columns(["job_id"]).append_column("order_key", order_key)
    pairs = embedding_pairs(ds, config, table.column("sample_id"))
    result = dedup_table(table, config, extra_pairs={"near_embedding": pairs})
    del table
    # The result does not depend on the input row order; the file is in sample_id order.
    result = result.take(pc.sort_indices(result.column("sample_id")))
    storage.atomic_write_parquet(ds.dedup_file, result)
    return {"samples": result.num_rows, "duplicates": int(pc.sum(result.column("is_duplicate")).as_py() or 0)}
