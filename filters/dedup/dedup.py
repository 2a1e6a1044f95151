"""Dedup across a whole dataset: five signals, clusters, one representative each.

Input: one row per sample with ``sample_id``, ``order_key`` (lower = ingested
earlier), ``media_sha256`` (list<string>), ``media_phash`` (list<uint64>) and
``text``. Output: ``schemas.dedup.DEDUP_SCHEMA``, one row per input row, same order.

Rows are first put in *preference order*, ascending (order_key, sample_id). Every
signal yields pairs, connected components label each sample with the smallest index
of its component, and so the representative is the earliest-ingested sample: a
second ingest job (larger order keys) never displaces the first job's samples, and
the result does not depend on the input row order. ``representative: best:COLUMN``
puts the highest ``preference`` value first instead (e.g. ``best:clip_score``: keep
the best-aligned copy), ties and nulls falling back to the earliest.

``near_embedding`` pairs (semantic dedup, ``filters/dedup/semantic.py``) are computed
out of core by the caller and passed in as ``extra_pairs`` (input row indices).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from filters.dedup.exact import text_hash
from filters.dedup.minhash import near_duplicate_text_pairs
from filters.dedup.phash import near_duplicate_image_pairs
from filters.dedup.union_find import component_sizes, connected_components, group_pairs
from schemas.dedup import DEDUP_SCHEMA, SIGNALS

INPUT_COLUMNS = ("sample_id", "order_key", "media_sha256", "media_phash", "text")
BEST = re.compile(r"best:([A-Za-z_][A-Za-z0-9_]*)")


@dataclass
class DedupConfig:
    # Which signals join samples into ``dup_cluster`` / ``is_duplicate``. Every signal's
    # own ``<signal>_cluster`` column is reported either way.
    duplicate_signals: tuple[str, ...] = ("exact_media", "exact_text", "near_text", "near_image")
    text_threshold: float = 0.8  # exact Jaccard of word shingles for near_text
    text_ngram: int = 3  # captions are short: 3-word shingles
    text_unit: str = "word"
    num_perm: int = 128
    image_max_distance: int = 4  # pHash Hamming distance for near_image
    # near_embedding (reported whenever embeddings exist; joins dup_cluster only when listed above)
    embedding_column: str = "clip_image_emb"  # a list<float> score column of unit embeddings
    embedding_threshold: float = 0.95  # cosine similarity for near_embedding
    embedding_clusters: int = 0  # k-means clusters; 0 = about one per 1000 samples
    # "earliest" (order_key, sample_id) or "best:COLUMN": highest value of a samples-view column
    representative: str = "earliest"

    def __post_init__(self) -> None:
        self.duplicate_signals = tuple(self.duplicate_signals)
        unknown = [s for s in self.duplicate_signals if s not in SIGNALS]
        if unknown:
            raise ValueError(f"unknown dedup signals {unknown}; known: {list(SIGNALS)}")
        if len(set(self.duplicate_signals)) != len(self.duplicate_signals):
            raise ValueError(f"duplicate_signals repeats a signal: {self.duplicate_signals}")
        if not 0.0 < self.text_threshold <= 1.0:
            raise ValueError("text_threshold must be in (0, 1]")
        if not 0 <= self.image_max_distance < 64:
            raise ValueError("image_max_distance must be in [0, 63]")
        if not -1.0 <= self.embedding_threshold <= 1.0:
            raise ValueError("embedding_threshold must be in [-1, 1]")
        if self.representative != "earliest" and not BEST.fullmatch(self.representative):
            raise ValueError("representative must be 'earliest' or 'best:COLUMN' (e.g. best:clip_score)")

    @property
    def preference_column(self) -> str | None:
        """The samples-view column ``best:COLUMN`` ranks by, or None for ``earliest``."""
        m = BEST.fullmatch(self.representative)
        return m.group(1) if m else None


def _groups_of(keys: list) -> np.ndarray:
    """Dense group id per item for hashable keys; None -> -1 (no signal)."""
    ids: dict = {}
    out = np.full(len(keys), -1, dtype=np.int64)
    for i, k in enumerate(keys):
        if k is not None:
            out[i] = ids.setdefault(k, len(ids))
    return out


def signal_pairs(
    sha_lists: list, phash_lists: list, texts: list, config: DedupConfig
) -> dict[str, np.ndarray]:
    """Edges (i, j) of each signal, over items already in preference order.

    Only connectivity matters here, so identical-key groups are stars, not cliques.
    """
    pairs: dict[str, np.ndarray] = {}
    media_keys = [tuple(s) if s else None for s in sha_lists]
    pairs["exact_media"] = group_pairs(_groups_of(media_keys), all_pairs=False)
    pairs["exact_text"] = group_pairs(_groups_of([text_hash(t) for t in texts]), all_pairs=False)
    pairs["near_text"] = near_duplicate_text_pairs(
        [t or "" for t in texts],
        threshold=config.text_threshold,
        num_perm=config.num_perm,
        ngram=config.text_ngram,
        unit=config.text_unit,
        all_pairs=False,
    )
    single = np.array(
        [i for i, p in enumerate(phash_lists) if p is not None and len(p) == 1 and p[0] is not None],
        dtype=np.int64,
    )
    hashes = np.array([phash_lists[i][0] for i in single], dtype=np.uint64)
    img = near_duplicate_image_pairs(hashes, config.image_max_distance, all_pairs=False)
    pairs["near_image"] = single[img].reshape(-1, 2)
    return pairs


def preference_order(ids: list, order_keys: list, preference: list | None) -> np.ndarray:
    """Row indices, best representative first: highest preference (nulls last), then earliest."""
    if preference is None:
        return np.array(sorted(range(len(ids)), key=lambda i: (order_keys[i], ids[i])), dtype=np.int64)
    missing = [p is None or p != p for p in preference]  # p != p: NaN counts as missing
    key = [(m, 0.0 if m else -float(p)) for m, p in zip(missing, preference)]
    return np.array(sorted(range(len(ids)), key=lambda i: (key[i], order_keys[i], ids[i])), dtype=np.int64)


def dedup_table(table: pa.Table, config: DedupConfig | None = None,
                extra_pairs: dict[str, np.ndarray] | None = None) -> pa.Table:
    """Cluster ``table``'s samples by the dedup signals; returns a DEDUP_SCHEMA table.

    With ``representative: best:COLUMN`` the table needs a ``preference`` column (higher
    is better). ``extra_pairs`` maps a signal (``near_embedding``) to (k, 2) input row
    index pairs computed elsewhere; a signal absent from it has no pairs.
    """
    config = config or DedupConfig()
    missing = [c for c in INPUT_COLUMNS if c not in table.column_names]
    if missing:
        raise ValueError(f"dedup input lacks columns {missing}")
    n = table.num_rows
    ids = table.column("sample_id").to_pylist()
    if len(set(ids)) != n:
        raise ValueError("sample_id must be unique")
    order_keys = table.column("order_key").to_pylist()
    if any(k is None for k in order_keys):
        raise ValueError("order_key must not be null")

    # Preference order: position p in ``perm`` is the p-th best representative.
    preference = None
    if config.preference_column:
        if "preference" not in table.column_names:
            raise ValueError(f"representative {config.representative!r} needs a preference column")
        preference = table.column("preference").to_pylist()
    perm = preference_order(ids, order_keys, preference)
    shas = table.column("media_sha256").to_pylist()
    phashes = table.column("media_phash").to_pylist()
    texts = table.column("text").to_pylist()
    pairs = signal_pairs(
        [shas[i] for i in perm], [phashes[i] for i in perm], [texts[i] for i in perm], config
    )

    inv = np.empty(n, dtype=np.int64)
    inv[perm] = np.arange(n)
    for sig in SIGNALS:
        if sig not in pairs:  # computed by the caller, in input row indices
            given = (extra_pairs or {}).get(sig)
            given = np.empty((0, 2), np.int64) if given is None else np.asarray(given, np.int64).reshape(-1, 2)
            pairs[sig] = inv[given]
    sorted_ids = np.array([ids[i] for i in perm], dtype=object)
    columns: dict[str, np.ndarray] = {}
    for sig in SIGNALS:
        labels = connected_components(n, pairs[sig])
        sizes = component_sizes(labels)
        columns[f"{sig}_cluster"] = np.where(sizes > 1, sorted_ids[labels], None)
    enabled = [pairs[s] for s in config.duplicate_signals]
    all_edges = np.concatenate(enabled) if enabled else np.empty((0, 2), dtype=np.int64)
    labels = connected_components(n, all_edges)
    sizes = component_sizes(labels)
    columns["dup_cluster"] = sorted_ids[labels]
    columns["dup_cluster_size"] = sizes.astype(np.int32)
    columns["is_duplicate"] = (sizes > 1) & (labels != np.arange(n))

    # Back to input row order.
    arrays = [pa.array(ids, type=pa.string())]
    for f in list(DEDUP_SCHEMA)[1:]:
        arrays.append(pa.array(columns[f.name][inv].tolist(), type=f.type))
    return pa.Table.from_arrays(arrays, schema=DEDUP_SCHEMA)
