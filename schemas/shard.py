"""Shard index rows: which sample went into which pack of which shard of which shard set.

A pack is one training sequence: whole samples whose total tokens and tiles fit the
packing budgets. Each pack is one WebDataset sample (its images' original bytes plus
one JSON, ``PackRecord``) inside a tar shard.
"""
from __future__ import annotations

import pyarrow as pa

from schemas.version import with_version

SHARD_INDEX_SCHEMA = with_version(
    pa.schema(
        [
            pa.field("shard_set", pa.string(), nullable=False),
            pa.field("shard", pa.string(), nullable=False),  # tar file name within the set
            pa.field("pack_key", pa.string(), nullable=False),  # WebDataset __key__
            pa.field("position", pa.int32(), nullable=False),  # order inside the pack
            pa.field("sample_id", pa.string(), nullable=False),
            pa.field("source", pa.string(), nullable=False),
            pa.field("component", pa.string()),  # mixture component that selected it
            pa.field("total_tokens", pa.int32(), nullable=False),
            pa.field("n_tiles", pa.int32(), nullable=False),
        ]
    ),
    "shards",
)

# Version of the JSON written per pack (the sub-sample boundaries a trainer reads).
PACK_FORMAT_VERSION = 1
