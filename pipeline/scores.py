"""Writing model-based score tables into the catalog.

A scorer (CLIP similarity, an LLM judge, ...) writes one Parquet table per part of the
catalog: ``sample_id`` plus its own columns, each prefixed with the scorer's name
(``clip_score``, ``judge_quality``). The ``samples`` view joins them by sample id, so
``tessera shard --where "clip_score > 0.28"`` works without re-ingesting anything.
"""
from __future__ import annotations

import pyarrow as pa

from pipeline import storage
from pipeline.catalog import SCORER_NAME
from pipeline.dataset import Dataset
from schemas import with_version


def write_scores(ds: Dataset, scorer: str, part: str, table: pa.Table) -> str:
    """Atomically write ``table`` (sample_id + ``scorer``-prefixed columns) as one score part."""
    if not SCORER_NAME.fullmatch(scorer):
        raise ValueError(f"scorer name {scorer!r}: use a-z, 0-9 and _, starting with a letter")
    if "sample_id" not in table.column_names:
        raise ValueError("a score table needs a sample_id column")
    bad = [c for c in table.column_names if c != "sample_id" and not c.startswith(scorer + "_")]
    if bad:
        raise ValueError(f"score columns must start with {scorer + '_'!r}: {bad}")
    table = table.replace_schema_metadata(with_version(table.schema, "scores").metadata)
    uri = ds.score_part(scorer, part)
    storage.atomic_write_parquet(uri, table)
    return uri
