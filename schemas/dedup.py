"""Dedup results: one row per sample, recomputed over the whole dataset after each job.

Each signal has its own cluster id (the representative's sample_id, or null when the
sample has no duplicate under that signal) so a user can choose signals in SQL;
``dup_cluster`` joins all enabled signals by union-find and ``is_duplicate`` is true
for every member but the representative.
"""
from __future__ import annotations

import pyarrow as pa

from schemas.version import with_version

# The dedup signals, in the order they are reported.
# near_embedding: CLIP image embeddings within a cosine threshold (semantic dedup); it needs
# a CLIP score table and is null for every sample when there is none.
SIGNALS = ("exact_media", "exact_text", "near_text", "near_image", "near_embedding")

DEDUP_SCHEMA = with_version(
    pa.schema(
        [
            pa.field("sample_id", pa.string(), nullable=False),
            pa.field("exact_media_cluster", pa.string()),
            pa.field("exact_text_cluster", pa.string()),
            pa.field("near_text_cluster", pa.string()),
            pa.field("near_image_cluster", pa.string()),
            pa.field("near_embedding_cluster", pa.string()),
            pa.field("dup_cluster", pa.string(), nullable=False),
            pa.field("dup_cluster_size", pa.int32(), nullable=False),
            pa.field("is_duplicate", pa.bool_(), nullable=False),
        ]
    ),
    "dedup",
)
