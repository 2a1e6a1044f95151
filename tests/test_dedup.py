"""Tests of filters.dedup: normalisation, pHash, MinHash/LSH, union-find, dedup_table."""
from __future__ import annotations

import io
import random

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from filters.dedup import (
    DedupConfig,
    MinHasher,
    connected_components,
    dedup_table,
    hamming,
    jaccard,
    near_duplicate_image_pairs,
    near_duplicate_text_pairs,
    normalize_text,
    phash64,
    shingle_hashes,
    shingles,
    text_hash,
    words,
)
from filters.dedup.union_find import pairs_with_equal_keys
from schemas.dedup import DEDUP_SCHEMA

skdata = pytest.importorskip("skimage.data")

VOCAB = [f"w{i}" for i in range(5000)]


def rand_text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(n))


def edit_words(text: str, rng: random.Random, k: int) -> str:
    toks = text.split()
    for _ in range(k):
        toks[rng.randrange(len(toks))] = "zzz"
    return " ".join(toks)


# ---------------------------------------------------------------- exact


def test_normalize_text():
    assert normalize_text("  «Hello,\n  WORLD!» ") == "hello, world"
    assert normalize_text("ＡＢＣ") == "abc"  # NFKC folds full-width letters
    assert normalize_text("Straße") == normalize_text("STRASSE")  # casefold
    assert normalize_text("...") == "" and normalize_text(None) == ""
    assert text_hash("A cat.") == text_hash("a  CAT") != text_hash("a dog")
    assert text_hash("") is None and text_hash("  !! ") is None


# ---------------------------------------------------------------- phash


def _reencode(img: Image.Image, **kw) -> Image.Image:
    b = io.BytesIO()
    img.convert("RGB").save(b, format="JPEG", **kw)
    return Image.open(io.BytesIO(b.getvalue()))


PHOTOS = {name: Image.fromarray(getattr(skdata, name)()) for name in ("astronaut", "coffee", "chelsea", "rocket", "camera")}


def test_phash_robust_to_reencode_and_resize():
    for name, img in PHOTOS.items():
        h = phash64(img)
        assert 0 <= h < 2**64
        jpeg = phash64(_reencode(img, quality=60))
        half = phash64(img.resize((img.width // 2, img.height // 2), Image.Resampling.BILINEAR))
        assert hamming(h, jpeg) <= 4, name
        assert hamming(h, half) <= 4, name


def test_phash_distinct_images_are_far():
    hashes = {k: phash64(v) for k, v in PHOTOS.items()}
    names = list(hashes)
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            assert hamming(hashes[names[i]], hashes[names[j]]) > 10, (names[i], names[j])
    # Synthetic patterns too: stripes vs checkerboard.
    x = np.arange(128)
    stripes = Image.fromarray(((x[None, :] // 16 % 2) * 255 * np.ones((128, 1))).astype(np.uint8))
    checks = Image.fromarray((((x[:, None] // 32 + x[None, :] // 32) % 2) * 255).astype(np.uint8))
    assert hamming(phash64(stripes), phash64(checks)) > 10


def _brute_pairs(h: np.ndarray, d: int) -> set:
    return {(i, j) for i in range(len(h)) for j in range(i + 1, len(h)) if hamming(h[i], h[j]) <= d}


@pytest.mark.parametrize("max_distance", [0, 2, 4, 7])
def test_image_pairs_equal_brute_force(max_distance):
    rng = np.random.default_rng(max_distance)
    base = rng.integers(0, 2**64, size=60, dtype=np.uint64, endpoint=False)
    # Plant close neighbours (flip a few bits) and exact copies.
    near = []
    for k in range(120):
        h = int(base[k % 60])
        for bit in rng.choice(64, size=rng.integers(0, 7), replace=False):
            h ^= 1 << int(bit)
        near.append(h)
    hashes = np.concatenate([base, np.array(near, dtype=np.uint64)])
    got = {tuple(p) for p in near_duplicate_image_pairs(hashes, max_distance).tolist()}
    assert got == _brute_pairs(hashes, max_distance)
    # The spanning variant gives the same components.
    span = near_duplicate_image_pairs(hashes, max_distance, all_pairs=False)
    full = np.array(sorted(got), dtype=np.int64).reshape(-1, 2)
    n = len(hashes)
    assert np.array_equal(connected_components(n, span), connected_components(n, full))


# ---------------------------------------------------------------- minhash


def test_tokeniser_matches_reference_words():
    texts = ["Hello, World! foo_bar été 42x", "", "  ...  ", "a-b c.d", "naïve Ünïcödé, ok"]
    _, off = shingle_hashes(texts, ngram=1)
    assert [int(x) for x in np.diff(off)] == [len(words(t)) for t in texts]
    assert words("Hello, World! foo_bar") == ["hello", "world", "foo_bar"]


def test_shingles():
    assert len(shingles("a b c d e f g", ngram=5)) == 3
    assert len(shingles("a b c", ngram=5)) == 1  # shorter than n: one shingle
    assert len(shingles("", ngram=5)) == 0
    assert np.array_equal(shingles("A b, C d e", 3), shingles("a B c  d E", 3))
    assert not np.array_equal(shingles("a b c d", 3), shingles("d c b a", 3))
    assert len(shingles("abcdef", ngram=3, unit="char")) == 4
    # Deterministic across calls and batch contexts (no salted hash()).
    v1, _ = shingle_hashes(["x y z w"], 2)
    v2, o2 = shingle_hashes(["q r", "x y z w"], 2)
    assert np.array_equal(v1, v2[o2[1] : o2[2]])


def test_signature_estimates_jaccard():
    rng = random.Random(0)
    hasher = MinHasher(num_perm=256, ngram=3)
    base = rand_text(rng, 400)
    texts = [base] + [edit_words(base, rng, k) for k in (5, 20, 40, 80)]
    sig = hasher.signatures(texts)
    sets = hasher.shingle_sets(texts)
    assert sig.shape == (5, 256) and sig.dtype == np.uint32
    for i in range(1, 5):
        true = jaccard(sets[0], sets[i])
        est = float(np.mean(sig[0] == sig[i]))
        assert abs(est - true) < 0.1, (true, est)


def test_near_duplicate_text_pairs_finds_edits_only():
    rng = random.Random(1)
    originals = [rand_text(rng, 200) for _ in range(150)]
    edited = [edit_words(t, rng, 2) for t in originals[:50]]
    texts = originals + edited + ["", "", "short", "short"]
    pairs = near_duplicate_text_pairs(texts, threshold=0.8, ngram=5)
    got = {tuple(p) for p in pairs.tolist()}
    planted = {(i, 150 + i) for i in range(50)}
    n = len(texts)
    assert got == planted | {(n - 2, n - 1)}  # the two identical "short" texts; empties never
    span = near_duplicate_text_pairs(texts, threshold=0.8, ngram=5, all_pairs=False)
    assert np.array_equal(connected_components(n, span), connected_components(n, pairs))


def test_near_text_identical_groups_expand():
    texts = ["the same caption about a dog"] * 4 + ["the same caption about a dog!", "other text here now"]
    got = {tuple(p) for p in near_duplicate_text_pairs(texts, ngram=3).tolist()}
    assert got == {(i, j) for i in range(5) for j in range(i + 1, 5)}


# ---------------------------------------------------------------- union-find


def _reference_components(n, pairs):
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return [find(i) for i in range(n)]


def test_connected_components():
    assert connected_components(3, np.empty((0, 2))).tolist() == [0, 1, 2]
    assert connected_components(5, np.array([[4, 3], [3, 1]])).tolist() == [0, 1, 2, 1, 1]
    rng = np.random.default_rng(0)
    for n, k in [(50, 30), (200, 150), (1000, 2000)]:
        pairs = rng.integers(0, n, size=(k, 2))
        assert connected_components(n, pairs).tolist() == _reference_components(n, pairs.tolist())
    # A long path given in the worst order.
    path = np.stack([np.arange(999, 0, -1), np.arange(998, -1, -1)], axis=1)
    assert (connected_components(1000, path) == 0).all()


def test_pairs_with_equal_keys():
    keys = np.array([3, 1, 3, 2, 3, 1])
    got = {tuple(p) for p in pairs_with_equal_keys(keys).tolist()}
    assert got == {(0, 2), (0, 4), (2, 4), (1, 5)}


# ---------------------------------------------------------------- dedup_table


def _row(sid, order, shas=(), phashes=(), text=""):
    return {"sample_id": sid, "order_key": order, "media_sha256": list(shas),
            "media_phash": list(phashes), "text": text}


def _crafted_rows():
    rng = random.Random(7)
    long_a = rand_text(rng, 60)
    hp = phash64(PHOTOS["chelsea"])
    hp_jpeg = phash64(_reencode(PHOTOS["chelsea"], quality=60))
    return [
        _row("m1", 5, ["s1", "s2"], [1, 2], "first"),
        _row("m2", 3, ["s1", "s2"], [1, 2], "second"),           # exact_media with m1
        _row("m3", 4, ["s2", "s1"], [2, 1], "third"),            # other order: not exact_media
        _row("t1", 10, [], [], "A cat on a mat."),
        _row("t2", 11, [], [], "a CAT on a  mat"),               # exact_text with t1
        _row("n1", 20, ["x1"], [11], long_a),
        _row("n2", 21, ["x2"], [2**63], edit_words(long_a, rng, 1)),  # near_text with n1
        _row("i1", 30, ["p1"], [hp], "photo one"),
        _row("i2", 29, ["p2"], [hp_jpeg], "photo two"),          # near_image with i1
        _row("i3", 31, ["p3", "p4"], [hp, hp], "two photos"),    # 2 media: no near_image
        _row("e1", 40, [], [], ""),
        _row("e2", 41, [], [], ""),                              # empty: no signal at all
        _row("u1", 50, ["z"], [2**64 - 1], "unique sample text"),
    ]


def _table(rows):
    schema = pa.schema([("sample_id", pa.string()), ("order_key", pa.int64()),
                        ("media_sha256", pa.list_(pa.string())), ("media_phash", pa.list_(pa.uint64())),
                        ("text", pa.string())])
    return pa.Table.from_pylist(rows, schema=schema)


def _by_id(t: pa.Table) -> dict:
    return {r["sample_id"]: r for r in t.to_pylist()}


def test_dedup_table_signals_and_representatives():
    rows = _crafted_rows()
    out = dedup_table(_table(rows), DedupConfig())
    assert out.schema == DEDUP_SCHEMA
    assert out.column("sample_id").to_pylist() == [r["sample_id"] for r in rows]
    r = _by_id(out)
    assert r["m1"]["exact_media_cluster"] == r["m2"]["exact_media_cluster"] == "m2"  # lower order_key
    assert r["m3"]["exact_media_cluster"] is None
    assert r["t1"]["exact_text_cluster"] == r["t2"]["exact_text_cluster"] == "t1"
    assert r["t1"]["near_text_cluster"] == "t1"  # same words: near too
    assert r["n1"]["near_text_cluster"] == r["n2"]["near_text_cluster"] == "n1"
    assert r["n1"]["exact_text_cluster"] is None
    assert r["i1"]["near_image_cluster"] == r["i2"]["near_image_cluster"] == "i2"
    assert r["i3"]["near_image_cluster"] is None
    for sid in ("e1", "e2", "u1"):
        assert r[sid]["dup_cluster"] == sid and r[sid]["dup_cluster_size"] == 1
        assert not r[sid]["is_duplicate"]
        assert all(r[sid][f"{s}_cluster"] is None for s in ("exact_media", "exact_text", "near_text", "near_image"))
    assert [r[s]["is_duplicate"] for s in ("m2", "m1", "t1", "t2", "n1", "n2", "i2", "i1")] == [
        False, True, False, True, False, True, False, True]
    assert r["m1"]["dup_cluster_size"] == 2 and r["m1"]["dup_cluster"] == "m2"
    assert sum(x["is_duplicate"] for x in r.values()) == 4


def test_dedup_table_signal_selection():
    rows = _crafted_rows()
    r = _by_id(dedup_table(_table(rows), DedupConfig(duplicate_signals=("exact_text",))))
    assert r["t2"]["is_duplicate"] and not r["m1"]["is_duplicate"] and not r["i1"]["is_duplicate"]
    assert r["m1"]["exact_media_cluster"] == "m2"  # still reported
    assert r["m1"]["dup_cluster"] == "m1" and r["m1"]["dup_cluster_size"] == 1
    with pytest.raises(ValueError):
        DedupConfig(duplicate_signals=("exact_text", "bogus"))


def test_dedup_table_chains_signals():
    # a~b by media, b~c by text: one cluster of three under the union.
    rows = [_row("a", 1, ["s"], [1], "alpha text"), _row("b", 2, ["s"], [2**40], "beta words here"),
            _row("c", 3, ["q"], [2**50], "Beta words here!")]
    r = _by_id(dedup_table(_table(rows), DedupConfig()))
    assert {x["dup_cluster"] for x in r.values()} == {"a"}
    assert r["c"]["dup_cluster_size"] == 3 and r["c"]["exact_text_cluster"] == "b"


def test_dedup_table_order_independent():
    rows = _crafted_rows()
    ref = _by_id(dedup_table(_table(rows), DedupConfig()))
    rng = random.Random(3)
    for _ in range(3):
        shuffled = rows[:]
        rng.shuffle(shuffled)
        assert _by_id(dedup_table(_table(shuffled), DedupConfig())) == ref


def test_second_job_dedups_against_first():
    rng = random.Random(11)
    job1 = [_row(f"j1-{i}", i, [f"sha{i}"], [rng.getrandbits(64)], rand_text(rng, 40)) for i in range(30)]
    job2 = []
    for i in range(10):  # copies of job-1 samples, with a new id and a later order key
        src = job1[i * 3]
        job2.append(_row(f"a-j2-{i}", 1000 + i, src["media_sha256"], src["media_phash"], src["text"]))
    job2 += [_row(f"a-j2-new{i}", 2000 + i, [f"new{i}"], [rng.getrandbits(64)], rand_text(rng, 40)) for i in range(5)]
    r = _by_id(dedup_table(_table(job2 + job1), DedupConfig()))
    for i in range(10):
        mine, src = r[f"a-j2-{i}"], f"j1-{i * 3}"
        assert mine["is_duplicate"] and mine["dup_cluster"] == src  # first job stays representative
        assert not r[src]["is_duplicate"]
    assert not any(r[f"a-j2-new{i}"]["is_duplicate"] for i in range(5))
    assert sum(x["is_duplicate"] for x in r.values()) == 10


def test_dedup_table_empty():
    out = dedup_table(_table([]), DedupConfig())
    assert out.num_rows == 0 and out.schema == DEDUP_SCHEMA


# ---------------------------------------------------------------- Arrow inputs


def test_shingle_hashes_arrow_matches_python_casefold():
    # Non-ASCII texts take Python's casefold ("ß" -> "ss", "İ" ...), ASCII ones an Arrow kernel.
    texts = ["Straße NACH Köln", "STRASSE nach köln", None, "", "plain ASCII Words here", "İstanbul ΣΊΣΥΦΟΣ"] * 3
    ref_v, ref_o = shingle_hashes(texts, 2)
    for arr in (pa.array(texts), pa.array(texts, pa.large_string()),
                pa.chunked_array([pa.array(texts[:7]), pa.array(texts[7:])])):
        v, o = shingle_hashes(arr, 2)
        assert np.array_equal(v, ref_v) and np.array_equal(o, ref_o)
    v, o = shingle_hashes(pa.array(texts).slice(4), 2)  # a sliced array: offsets start mid-buffer
    sv, so = shingle_hashes(texts[4:], 2)
    assert np.array_equal(v, sv) and np.array_equal(o, so)
    assert np.array_equal(shingle_hashes(texts[:1], 3)[0], shingle_hashes(texts[1:2], 3)[0])  # casefold equal


def test_unique_shingle_sets_blocks_equal_one_batch(monkeypatch):
    import importlib

    sh = importlib.import_module("filters.dedup.shingles")  # the package exports a function of that name
    rng = random.Random(5)
    texts = [rand_text(rng, rng.randint(0, 12)) for _ in range(300)]
    ref = sh.unique_sets(*shingle_hashes(texts, 3))
    monkeypatch.setattr(sh, "_SET_BLOCK", 7)
    got = sh.unique_shingle_sets(pa.array(texts), 3)
    assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1])


def test_media_groups_equal_tuple_grouping():
    from filters.dedup.keys import media_groups

    def tuple_groups(keys: list) -> np.ndarray:  # the reference: a dict of hashable keys, None -> -1
        ids: dict = {}
        return np.array([-1 if k is None else ids.setdefault(k, len(ids)) for k in keys], dtype=np.int64)

    rng = random.Random(9)
    for width in (64, None):  # fixed-width sha hex (byte matrix path) and free-form strings
        pool = [(f"{rng.getrandbits(256):064x}" if width else "s" * rng.randint(1, 4)) for _ in range(6)]
        rows = [None if rng.random() < 0.1 else [rng.choice(pool) for _ in range(rng.randint(0, 3))]
                for _ in range(400)]
        ref = tuple_groups([tuple(r) if r else None for r in rows])
        col = pa.chunked_array([pa.array(rows[:150], pa.list_(pa.string())),
                                pa.array(rows[150:], pa.list_(pa.string()))])
        got = media_groups(col)
        assert np.array_equal(got < 0, ref < 0)
        # Same partition: each reference group maps to exactly one new group and back.
        pairs = {(a, b) for a, b in zip(ref.tolist(), got.tolist()) if a >= 0}
        assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})


def test_preference_order_matches_sorted_keys():
    from filters.dedup.dedup import preference_order

    rng = random.Random(4)
    n = 500
    ids = [f"id{rng.getrandbits(40):x}" for _ in range(n)]
    keys = [rng.randint(0, 20) for _ in range(n)]
    pref = [rng.choice([None, float("nan"), -0.0, 0.0, 1.5, -2.0, rng.random()]) for _ in range(n)]
    ref = sorted(range(n), key=lambda i: (keys[i], ids[i]))
    assert preference_order(pa.array(ids), pa.array(keys)).tolist() == ref
    missing = [p is None or p != p for p in pref]
    ref = sorted(range(n), key=lambda i: (missing[i], 0.0 if missing[i] else -pref[i], keys[i], ids[i]))
    assert preference_order(ids, keys, pref).tolist() == ref


def test_dedup_table_chunked_input_equals_one_chunk():
    rows = _crafted_rows()
    table = _table(rows)
    chunked = pa.Table.from_batches(table.to_batches(max_chunksize=4))
    assert chunked.column("text").num_chunks > 1
    assert dedup_table(chunked, DedupConfig()).equals(dedup_table(table, DedupConfig()))


def test_near_image_pairs_balanced_hashes_brute_force():
    # pHash sets half of its bits: such hashes crowd the pigeonhole buckets (the case the
    # streamed candidate check exists for); the result must still be exact.
    rng = np.random.default_rng(2)
    base = []
    for _ in range(300):
        bits = np.zeros(64, dtype=bool)
        bits[rng.choice(64, 32, replace=False)] = True
        base.append(int("".join("1" if b else "0" for b in bits), 2))
    hashes = [h ^ (1 << int(rng.integers(64))) if i % 3 == 0 else h for i, h in enumerate(base)]
    hashes = np.array(hashes + base[:50], dtype=np.uint64)
    d = hamming(hashes[:, None], hashes[None, :])
    want = {(i, j) for i in range(len(hashes)) for j in range(i + 1, len(hashes)) if d[i, j] <= 4}
    assert want  # copies and one-bit edits exist
    assert {tuple(p) for p in near_duplicate_image_pairs(hashes, 4).tolist()} == want
