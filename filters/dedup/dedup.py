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
import pyarrow.compute as pc

from filters.dedup.keys import _flat, media_groups, single_image_hashes, text_groups
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


def signal_pairs(sha_lists, phash_lists, texts, config: DedupConfig) -> dict[str, np.ndarray]:
    """Edges (i, j) of each signal over the items as given (Arrow arrays or Python lists).

    Only connectivity matters here, so identical-key groups are stars, not cliques, and
    the item order does not change the components.
    """
    pairs: dict[str, np.ndarray] = {}
    pairs["exact_media"] = group_pairs(media_groups(_as_arrow(sha_lists, pa.list_(pa.string()))), all_pairs=False)
    texts = _as_arrow(texts, pa.string())
    pairs["exact_text"] = group_pairs(text_groups(texts), all_pairs=False)
    pairs["near_text"] = near_duplicate_text_pairs(
        texts,
        threshold=config.text_threshold,
        num_perm=config.num_perm,
        ngram=config.text_ngram,
        unit=config.text_unit,
        all_pairs=False,
    )
    single, hashes = single_image_hashes(_as_arrow(phash_lists, pa.list_(pa.uint64())))
    img = near_duplicate_image_pairs(hashes, config.image_max_distance, all_pairs=False)
    pairs["near_image"] = single[img].reshape(-1, 2)
    return pairs


def _as_arrow(values, type_: pa.DataType):
    return values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values, type=type_)


def _dense_rank(values) -> np.ndarray:
    """Rank of each value in ascending order, equal values equal rank (Arrow sort: any type;
    arrays and chunked arrays alike)."""
    return pc.rank(values, sort_keys="ascending", tiebreaker="dense").to_numpy().astype(np.int64)


def preference_order(ids, order_keys, preference=None) -> np.ndarray:
    """Row indices, best representative first: highest preference (nulls, NaN last), then earliest
    (order_key, then sample_id). Arrow arrays or lists; one ``np.lexsort``, no per-row key."""
    ids = _as_arrow(ids, pa.string())
    keys = [_dense_rank(ids), _dense_rank(_as_arrow(order_keys, None))]
    if preference is not None:
        p = pc.cast(_flat(_as_arrow(preference, pa.float64())), pa.float64())
        values = pc.fill_null(p, np.nan).to_numpy(zero_copy_only=False)
        missing = np.isnan(values)
        keys += [np.where(missing, 0.0, -values), missing]
    return np.lexsort(keys).astype(np.int64)


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
    ids = _flat(table.column("sample_id")).cast(pa.string())
    if n and pc.count_distinct(ids, mode="all").as_py() != n:
        raise ValueError("sample_id must be unique")
    order_keys = table.column("order_key")
    if order_keys.null_count:
        raise ValueError("order_key must not be null")

    # Preference order: position p in ``perm`` is the p-th best representative.
    preference = None
    if config.preference_column:
        if "preference" not in table.column_names:
            raise ValueError(f"representative {config.representative!r} needs a preference column")
        preference = table.column("preference")
    perm = preference_order(ids, order_keys, preference) if n else np.empty(0, np.int64)
    inv = np.empty(n, dtype=np.int64)
    inv[perm] = np.arange(n)
    # Signals on the input rows as they are (no reordered copy of the columns); only the
    # components matter, and their labels come from positions in preference order.
    found = signal_pairs(table.column("media_sha256"), table.column("media_phash"), table.column("text"), config)
    pairs = {sig: inv[p] for sig, p in found.items()}
    for sig in SIGNALS:
        if sig not in pairs:  # computed by the caller, in input row indices
            given = (extra_pairs or {}).get(sig)
            given = np.empty((0, 2), np.int64) if given is None else np.asarray(given, np.int64).reshape(-1, 2)
            pairs[sig] = inv[given]

    def cluster_ids(labels: np.ndarray, keep: np.ndarray | None) -> pa.Array:
        """Representative sample_id per input row (labels are preference positions)."""
        rep = perm[labels[inv]]
        mask = None if keep is None else ~keep[inv]
        return pc.take(ids, pa.array(rep, type=pa.int64(), mask=mask))

    arrays = [ids]
    for sig in SIGNALS:
        labels = connected_components(n, pairs[sig])
        arrays.append(cluster_ids(labels, component_sizes(labels) > 1))
    enabled = [pairs[s] for s in config.duplicate_signals]
    all_edges = np.concatenate(enabled) if enabled else np.empty((0, 2), dtype=np.int64)
    labels = connected_components(n, all_edges)
    sizes = component_sizes(labels)
    arrays.append(cluster_ids(labels, None))
    arrays.append(pa.array(sizes[inv].astype(np.int32)))
    arrays.append(pa.array(((sizes > 1) & (labels != np.arange(n)))[inv]))
    return pa.Table.from_arrays(arrays, schema=DEDUP_SCHEMA)
