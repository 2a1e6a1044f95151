"""Per-row keys of the exact signals and the near_image candidates, from Arrow columns.

Every function takes an Arrow array or chunked array (the catalog query's columns, one
chunk per partition) and returns numpy arrays, without turning rows into Python
objects: at a million samples a per-row list of tuples or strings costs gigabytes.
Group ids are arbitrary dense integers; only which rows share one matters (the
components, and so the cluster labels, do not depend on them).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from filters.dedup.exact import text_hash


def _groups_of(keys: np.ndarray) -> np.ndarray:
    """Dense group id per row of equal keys, ``keys`` an (n, k) integer array (one lexsort).
    Group ids are arbitrary; only which rows share one matters."""
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
