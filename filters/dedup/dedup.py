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


def _groups_of(keys) -> np.ndarray:
    """Dense group id per item of equal keys.

    ``keys`` is an (n, k) integer array (one row per item; one lexsort) or a list of
    hashable keys (None -> -1, no signal). Group ids are arbitrary; only which items
    share one matters.
    """
    if isinstance(keys, list):
        ids: dict = {}
        out = np.full(len(keys), -1, dtype=np.int64)
        for i, k in enumerate(keys):
            if k is not None:
                out[i] = ids.setdefault(k, len(ids))
        return out
    keys = np.asarray(keys)
    out = np.empty(len(keys), dtype=np.int64)
    if len(keys) == 0:
        return out
    keys = keys.reshape(len(keys), -1)
    order = np.lexsort(keys.T[::-1])
    new = np.zeros(len(keys), dtype=bool)
    new[0] = True
    for c in range(keys.shape[1]):  # a column at a time: no sorted copy of the whole matrix
        col = keys[order, c]
        new[1:] |= col[1:] != col[:-1]
    out[order] = np.cumsum(new) - 1
    return out


def _flat(column) -> pa.Array:
    """One contiguous Arrow array (zero-copy for a single chunk)."""
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return column if isinstance(column, pa.Array) else pa.array(column)


def _chunks(column) -> list[pa.Array]:
    if isinstance(column, pa.ChunkedArray):
        return column.chunks
    return [column if isinstance(column, pa.Array) else pa.array(column)]


def _list_layout(lists) -> tuple[np.ndarray, np.ndarray, pa.ChunkedArray]:
    """(start into ``values``, length) per row of a (chunked) list array, null list: length 0,
    and the rows' values concatenated as a chunked array (no copy of the column)."""
    starts, lengths, values, base = [], [], [], 0
    for chunk in _chunks(lists):
        off = chunk.offsets.to_numpy().astype(np.int64)
        lengths.append(pc.fill_null(pc.list_value_length(chunk), 0).to_numpy().astype(np.int64))
        starts.append(off[:-1] - off[0] + base)
        values.append(chunk.values.slice(off[0], off[-1] - off[0]))
        base += int(off[-1] - off[0])
    if not values:
        return np.empty(0, np.int64), np.empty(0, np.int64), pa.chunked_array([], pa.null())
    return np.concatenate(starts), np.concatenate(lengths), pa.chunked_array(values, values[0].type)


def _indices(encoded) -> np.ndarray:
    """Dictionary indices of a (chunked) dictionary_encode result as int64, null -> -1.
    The chunks of one ``dictionary_encode`` call share one dictionary."""
    parts = [pc.fill_null(c.indices, -1).to_numpy().astype(np.int64) for c in _chunks(encoded)]
    return np.concatenate(parts) if parts else np.empty(0, np.int64)


def _fixed_width_words(values: pa.ChunkedArray) -> np.ndarray | None:
    """The strings as an (n, k) uint64 matrix of their bytes when all are non-null and of one
    byte length (sha256 hex digests), read off the data buffers; else None."""
    values = pc.cast(values, pa.string()) if pa.types.is_large_string(values.type) else values
    if not pa.types.is_string(values.type) or values.null_count or len(values) == 0:
        return None
    lengths = pc.binary_length(values)
    width = pc.min_max(lengths).as_py()
    if width["min"] != width["max"] or not width["min"]:
        return None
    width = width["min"]
    k = -(-width // 8)
    out = np.zeros((len(values), k * 8), dtype=np.uint8)
    row = 0
    for chunk in values.chunks:
        if len(chunk) == 0:
            continue
        _, obuf, dbuf = chunk.buffers()
        off = np.frombuffer(obuf, dtype=np.int32)[chunk.offset : chunk.offset + len(chunk) + 1]
        data = np.frombuffer(dbuf, dtype=np.uint8)[off[0] : off[-1]]
        out[row : row + len(chunk), :width] = data.reshape(len(chunk), width)
        row += len(chunk)
    return out.view(np.uint64)


def _string_ids(values: pa.ChunkedArray) -> np.ndarray:
    """Dense id per string of equal values (null is one value of its own)."""
    words = _fixed_width_words(values)
    if words is not None:  # one lexsort of the bytes: no hash table of a million strings
        return _groups_of(words)
    return _indices(pc.dictionary_encode(values, null_encoding="encode"))


def media_groups(sha_lists) -> np.ndarray:
    """exact_media group per row: equal lists of sha256 (in order); -1 for no media."""
    starts, lengths, values = _list_layout(sha_lists)
    group = np.full(len(lengths), -1, dtype=np.int64)
    if not lengths.any():
        return group
    # Each distinct sha string becomes an integer, so a row is a short integer vector.
    elem = _string_ids(values)
    base = 0
    for length in np.unique(lengths[lengths > 0]):
        rows = np.flatnonzero(lengths == length)
        local = _groups_of(elem[starts[rows, None] + np.arange(length)])
        group[rows] = base + local
        base += int(local.max()) + 1
    return group


_HASH_BLOCK = 1 << 16  # texts normalised and hashed at a time (bounded Python objects)


def text_groups(texts) -> np.ndarray:
    """exact_text group per row: equal ``text_hash``; -1 where the normalised text is empty.

    ``text_hash`` (Unicode normalisation) runs a block of rows at a time and keeps only
    its 32-byte digest: no hash table or list of a million texts.
    """
    n = len(texts)
    digests = np.zeros((n, 4), dtype=np.uint64)
    empty = np.zeros(n, dtype=bool)
    for s in range(0, n, _HASH_BLOCK):
        block = texts.slice(s, _HASH_BLOCK).to_pylist()
        hexes = [text_hash(t) for t in block]
        empty[s : s + len(block)] = [h is None for h in hexes]
        raw = b"".join(bytes.fromhex(h) if h else bytes(32) for h in hexes)
        digests[s : s + len(block)] = np.frombuffer(raw, dtype=np.uint64).reshape(-1, 4)
    return np.where(empty, -1, _groups_of(digests))


def single_image_hashes(phash_lists) -> tuple[np.ndarray, np.ndarray]:
    """Rows with exactly one non-null pHash, and those hashes (near_image compares only these)."""
    starts, lengths, values = _list_layout(phash_lists)
    one = np.flatnonzero(lengths == 1)
    if len(one) == 0:
        return one, np.empty(0, dtype=np.uint64)
    first = pc.take(values, pa.array(starts[one])).combine_chunks()
    valid = pc.is_valid(first).to_numpy(zero_copy_only=False)
    single = one[valid]
    hashes = pc.fill_null(first, 0).to_numpy(zero_copy_only=False).astype(np.uint64)[valid]
    return single, hashes


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
    """Rank of each value in ascending order, equal values equal rank (Arrow sort: any type)."""
    values = values if isinstance(values, pa.ChunkedArray) else _flat(values)
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
