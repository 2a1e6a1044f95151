"""Shingling: texts to sets of 64-bit shingle hashes, for a whole batch at once.

Words are casefolded runs of ASCII letters/digits/underscore and non-ASCII
characters (see ``words``, the readable reference of the vectorised tokeniser);
``unit="char"`` uses characters of the casefolded, space-collapsed text instead.
Every window of ``ngram`` tokens becomes one 64-bit hash; a text shorter than
``ngram`` tokens is one shingle of all of them and an empty text has none. All hashes
are deterministic (no salted ``hash()``): equal text, equal shingles, in any process.
"""
from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from filters.dedup.keys import _flat

_PRIME = np.uint64(0x100000001B3)  # FNV-1a 64-bit prime
_EMPTY = np.empty(0, dtype=np.uint64)
# Word characters: ASCII letters, digits, "_" and every non-ASCII character (any UTF-8
# byte >= 0x80), so tokenising can run on the raw bytes of the whole batch at once.
_WORD = re.compile(r"[0-9a-z_\u0080-\U0010ffff]+")
_IS_WORD_BYTE = np.zeros(256, dtype=bool)
_IS_WORD_BYTE[[*range(48, 58), *range(97, 123), 95, *range(128, 256)]] = True


def words(text: str | None) -> list[str]:
    """The word tokens used for shingling (reference version of the vectorised tokeniser).

    Casefolded text cut into maximal runs of ASCII letters/digits/underscore and
    non-ASCII characters; ASCII punctuation and whitespace separate words.
    """
    return _WORD.findall(text.casefold()) if text else []


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A strong 64-bit finaliser (SplitMix64): spreads every input bit over the output."""
    x = x.astype(np.uint64, copy=True)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


_K = np.uint64(0x9E3779B97F4A7C15)  # odd, so invertible mod 2^64
_K_INV = np.uint64(pow(int(_K), -1, 1 << 64))


_POWERS: dict[int, np.ndarray] = {}
_CHUNK_BYTES = 1 << 20  # words are hashed ~1 MiB of text at a time: arrays stay in cache


def _powers(base: np.uint64, n: int) -> np.ndarray:
    """base**i mod 2^64 for i < n (wrapping uint64 arithmetic), cached and grown on demand."""
    table = _POWERS.get(int(base))
    if table is None or len(table) < n:
        table = np.full(max(n, _CHUNK_BYTES + 1), base, dtype=np.uint64)
        table[0] = 1
        np.multiply.accumulate(table, out=table)
        _POWERS[int(base)] = table
    return table


def _word_hashes(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hashes and start offsets of the words in one UTF-8 byte buffer."""
    isw = _IS_WORD_BYTE[buf]
    prev = np.empty_like(isw)
    prev[0] = False
    prev[1:] = isw[:-1]
    starts = np.flatnonzero(isw & ~prev)
    nxt = np.empty_like(isw)
    nxt[-1] = False
    nxt[:-1] = isw[1:]
    ends = np.flatnonzero(isw & ~nxt) + 1
    prefix = np.empty(len(buf) + 1, dtype=np.uint64)
    prefix[0] = 0
    np.multiply(buf.astype(np.uint64), _powers(_K, len(buf))[: len(buf)], out=prefix[1:])
    np.cumsum(prefix, out=prefix)
    h = (prefix[ends] - prefix[starts]) * _powers(_K_INV, len(buf))[starts]
    return _splitmix64(h ^ ((ends - starts).astype(np.uint64) << np.uint64(56))), starts


def _is_arrow(texts) -> bool:
    return isinstance(texts, (pa.Array, pa.ChunkedArray))


def text_batch(texts):
    """``texts`` as something with ``len`` and slicing: an Arrow array or a list as they are
    (no copy of a million-element list per call), any other iterable of str as a list."""
    return texts if _is_arrow(texts) or isinstance(texts, list) else list(texts)


def _casefolded_utf8(texts) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 bytes of all casefolded texts, concatenated, and their n+1 offsets.

    ``texts`` is a list of str (None: empty) or an Arrow string array. For Arrow input
    the ASCII texts (casefold = ASCII lowercase there) are lowered by an Arrow kernel
    and the bytes are read off its buffers: only non-ASCII texts become Python str.
    """
    if not _is_arrow(texts):
        enc = [t.casefold().encode("utf-8") if t else b"" for t in texts]
        off = np.r_[0, np.cumsum([len(e) for e in enc], dtype=np.int64)].astype(np.int64)
        return np.frombuffer(b"".join(enc), dtype=np.uint8), off
    arr = _flat(texts)  # zero-copy for one chunk
    if arr.null_count:
        arr = pc.fill_null(arr, "")
    lowered = pc.ascii_lower(arr)
    other = pc.invert(pc.string_is_ascii(arr))
    if pc.any(other).as_py():
        folded = [t.casefold() for t in arr.filter(other).to_pylist()]
        lowered = pc.replace_with_mask(lowered, other, pa.array(folded, lowered.type))
    _, obuf, dbuf = lowered.buffers()
    wide = pa.types.is_large_string(lowered.type)
    off = np.frombuffer(obuf, dtype=np.int64 if wide else np.int32)[lowered.offset : lowered.offset + len(lowered) + 1]
    off = off.astype(np.int64)
    data = np.frombuffer(dbuf, dtype=np.uint8) if dbuf is not None else np.empty(0, np.uint8)
    return data[off[0] : off[-1]], off - off[0]


def _token_hashes(texts, unit: str) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated uint64 token hashes of all texts and the token count per text.

    Words: casefolded texts are joined (NUL-separated) into UTF-8 byte buffers of
    about 1 MiB and word boundaries come from a byte lookup table. A word's hash is
    the polynomial ``sum(byte_i * K^i)`` of its bytes, read off a prefix sum over the
    buffer as ``(P[end] - P[start]) * K^-start`` (K is odd, so invertible mod 2^64),
    then mixed by SplitMix64. No Python code runs per word, and equal words hash
    equally in every batch and process.
    """
    if unit == "word":
        data, off = _casefolded_utf8(texts)
        n = len(off) - 1
        counts = np.zeros(n, dtype=np.int64)
        out = []
        # Document i starts at off[i] + i in the NUL-separated stream.
        stream_end = off[1:] + np.arange(1, n + 1)
        i = 0
        while i < n:
            base = off[i] + i
            j = max(i + 1, int(np.searchsorted(stream_end, base + _CHUNK_BYTES, side="left")))
            j = min(j, n)
            doc_start = off[i:j] - off[i] + np.arange(j - i)
            buf = np.zeros(int(off[j] - off[i]) + (j - i), dtype=np.uint8)  # NUL after each text
            pos = np.arange(off[i], off[j]) - off[i]
            buf[pos + np.repeat(np.arange(j - i), np.diff(off[i : j + 1]))] = data[off[i] : off[j]]
            h, starts = _word_hashes(buf)
            doc = np.searchsorted(doc_start, starts, side="right") - 1
            counts[i:j] = np.bincount(doc, minlength=j - i)
            out.append(h)
            i = j
        return (np.concatenate(out) if out else _EMPTY.copy()), counts
    if unit == "char":
        if _is_arrow(texts):
            texts = texts.to_pylist()
        norm = [" ".join(t.casefold().split()) if t else "" for t in texts]
        counts = np.fromiter((len(t) for t in norm), dtype=np.int64, count=len(norm))
        cps = np.frombuffer("".join(norm).encode("utf-32-le"), dtype=np.uint32)
        return _splitmix64(cps.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)), counts
    raise ValueError(f"unit must be 'word' or 'char', got {unit!r}")


def shingle_hashes(texts, ngram: int = 5, unit: str = "word") -> tuple[np.ndarray, np.ndarray]:
    """Shingle hashes of a batch: (concatenated uint64 values, offsets of length n+1).

    ``texts``: a list of str or an Arrow string array (read off its buffers).
    Values are in document order, not de-duplicated. A text with 1..ngram-1 tokens
    gives one shingle of all its tokens; an empty text gives none.
    """
    if ngram < 1:
        raise ValueError("ngram must be >= 1")
    tok, counts = _token_hashes(text_batch(texts), unit)
    tok_off = np.r_[0, np.cumsum(counts)]
    n_sh = np.where(counts >= ngram, counts - ngram + 1, np.minimum(counts, 1))
    sh_off = np.r_[0, np.cumsum(n_sh)]
    total = int(sh_off[-1])
    if total == 0:
        return _EMPTY.copy(), sh_off
    rank = np.arange(total) - np.repeat(sh_off[:-1], n_sh)
    starts = np.repeat(tok_off[:-1], n_sh) + rank
    lens = np.repeat(np.minimum(counts, ngram), n_sh)
    # Full windows: fold token j of every window with in-place passes over slices.
    m = max(len(tok) - ngram + 1, 0)
    full = np.full(m, 0xCBF29CE484222325, dtype=np.uint64)
    for j in range(ngram):
        full ^= tok[j : j + m]
        full *= _PRIME
    h = np.empty(total, dtype=np.uint64)
    short = lens < ngram
    h[~short] = full[starts[~short]]
    if short.any():  # texts with fewer tokens than ngram: one shingle of all of them
        ss, sl = starts[short], lens[short]
        hs = np.full(len(ss), 0xCBF29CE484222325, dtype=np.uint64)
        for j in range(ngram):
            step = (hs ^ tok[np.minimum(ss + j, len(tok) - 1)]) * _PRIME
            hs = np.where(j < sl, step, hs)
        h[short] = hs
    return _splitmix64(h ^ lens.astype(np.uint64)), sh_off


def unique_sets(values: np.ndarray, offsets: np.ndarray, doc_bits: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-document sorted unique shingle hashes for a whole batch with one sort.

    Each hash is packed with its document number in the top bits (``doc_bits``, by
    default ``ceil(log2 n)``; the hash keeps the rest, >= 44 bits for a million
    documents), so one ``np.sort`` groups by document and sorts within it. Returns
    (values, offsets) in the same layout as the input; slices are the exact shingle sets.
    """
    n = len(offsets) - 1
    db = max(1, (n - 1).bit_length()) if doc_bits is None else doc_bits
    if n > 1 << db:
        raise ValueError(f"{n} documents do not fit in doc_bits={db}")
    hb = np.uint64(64 - db)
    doc = np.repeat(np.arange(n, dtype=np.uint64), np.diff(offsets))
    key = (doc << hb) | (values >> np.uint64(db))
    del doc
    key.sort()
    keep = np.r_[True, key[1:] != key[:-1]] if len(key) else np.zeros(0, dtype=bool)
    key = key[keep]
    uoff = np.searchsorted(key >> hb, np.arange(n + 1, dtype=np.uint64), side="left")
    key &= np.uint64((1 << int(hb)) - 1)
    return key, uoff.astype(np.int64)


_SET_BLOCK = 1 << 16  # documents shingled and de-duplicated at a time


def unique_shingle_sets(texts, ngram: int = 5, unit: str = "word") -> tuple[np.ndarray, np.ndarray]:
    """``unique_sets(*shingle_hashes(texts, ngram, unit))``, a block of documents at a time.

    Sets are per document, so blocks give the same values (the document bits are those
    of the whole batch); only the sets are kept, not every block's tokens and shingles.
    """
    texts = text_batch(texts)
    n = len(texts)
    db = max(1, (n - 1).bit_length())
    vals, offs, base = [], [np.zeros(1, dtype=np.int64)], 0
    for s in range(0, n, _SET_BLOCK):
        block = texts.slice(s, _SET_BLOCK) if _is_arrow(texts) else texts[s : s + _SET_BLOCK]
        v, o = unique_sets(*shingle_hashes(block, ngram, unit), doc_bits=db)
        vals.append(v)
        offs.append(o[1:] + base)
        base += int(o[-1])
    return (np.concatenate(vals) if vals else _EMPTY.copy()), np.concatenate(offs)


def shingles(text: str, ngram: int = 5, unit: str = "word") -> np.ndarray:
    """The shingle set of one text: sorted unique uint64 hashes."""
    values, _ = shingle_hashes([text], ngram, unit)
    return np.unique(values)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted unique arrays (0 when both are empty)."""
    if len(a) == 0 or len(b) == 0:
        return 0.0
    if len(a) > len(b):
        a, b = b, a
    pos = np.minimum(np.searchsorted(b, a), len(b) - 1)
    inter = int(np.count_nonzero(b[pos] == a))
    return inter / (len(a) + len(b) - inter)
