"""The demo corpus: deterministic, every planted input where the truth says, corrupt inputs
really corrupt, valid ones really valid, and no duplicate beyond the planted ones."""
from __future__ import annotations

import hashlib
import io
import itertools
import json
import math
import tarfile
import warnings
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image, UnidentifiedImageError

from jobs import demo_images as di
from filters.dedup.phash import hamming, phash64
from jobs.demo_corpus import DemoCorpus, build_demo_corpus, load_truth


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> DemoCorpus:
    return build_demo_corpus(tmp_path_factory.mktemp("demo"), seed=0)


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _resolve(corpus: DemoCorpus, name: str) -> dict:
    """What an input name points at: image bytes (None if missing), caption bytes, and for
    manifest rows the parsed row (None if not JSON)."""
    root = corpus.root
    if name.startswith("folder/"):
        path = root / name
        stem = path.with_suffix("")
        cap = stem.with_suffix(".txt")
        image = path.read_bytes() if path.suffix != ".txt" and path.exists() else None
        return {"image": image, "caption": cap.read_bytes() if cap.exists() else b""}
    if name.startswith("manifest.jsonl#"):
        line = corpus.manifest_jsonl.read_text("utf-8").splitlines()[int(name.split("#")[1])]
        try:
            row = json.loads(line)
        except ValueError:
            return {"row": None}
        image = root / row["image"] if "image" in row else None
        return {"row": row, "image": image.read_bytes() if image and image.exists() else None,
                "caption": row.get("caption", "").encode("utf-8")}
    if name.startswith("manifest.parquet#"):
        row = pq.read_table(corpus.manifest_parquet).to_pylist()[int(name.split("#")[1])]
        return {"image": row["image_bytes"], "caption": row["caption"].encode("utf-8")}
    tar_name, key = name.removeprefix("tars/").split("#")
    with tarfile.open(root / "tars" / tar_name) as tar:
        files = {m.name.split(".", 1)[1]: tar.extractfile(m).read()
                 for m in tar.getmembers() if m.name.split(".", 1)[0] == key}
    assert files, f"{name}: no member with key {key}"
    return {"image": files.get("jpg"), "caption": files.get("txt", b"")}


def _decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def test_deterministic_and_idempotent(corpus, tmp_path):
    before = _hashes(corpus.root)
    build_demo_corpus(corpus.root, seed=0)  # rebuilding on the same root: identical bytes
    assert _hashes(corpus.root) == before
    assert load_truth(corpus.root) == corpus.truth
    total = sum((corpus.root / p).stat().st_size for p in before)
    assert total < 30e6


def test_truth_is_consistent(corpus):
    t = corpus.truth
    assert len(set(t.inputs)) == len(t.inputs)
    named = set(itertools.chain(*t.duplicate_groups)) | set(t.corrupt) | set(t.bad_captions)
    assert named <= set(t.inputs)
    assert t.n_valid == len(t.inputs) - len(t.corrupt)
    assert len(t.duplicate_kinds) == len(t.duplicate_groups)
    assert not set(t.corrupt) & set(t.bad_captions)
    assert set(t.corrupt.values()) == {"empty", "not_an_image", "truncated", "decompression_bomb",
                                       "undecodable_text", "missing_file", "malformed_row"}
    assert set(t.bad_captions.values()) == {"caption_too_short", "garbled_text", "nonprintable_text",
                                            "repetitive_ngrams", "repetitive_lines", "caption_too_long"}
    # All three layouts hold inputs, and every file of the folder belongs to an input.
    for prefix in ("folder/", "manifest.jsonl#", "manifest.parquet#", "tars/00000.tar#", "tars/00001.tar#"):
        assert any(n.startswith(prefix) for n in t.inputs), prefix
    stems = {Path(n).with_suffix("").name for n in t.inputs if n.startswith("folder/")}
    assert {p.with_suffix("").name for p in corpus.folder.iterdir()} == stems
    assert len(corpus.manifest_jsonl.read_text("utf-8").splitlines()) == sum(
        n.startswith("manifest.jsonl#") for n in t.inputs)


def test_every_input_exists_and_corrupt_ones_fail(corpus):
    for name in corpus.truth.inputs:
        got = _resolve(corpus, name)
        reason = corpus.truth.corrupt.get(name)
        if reason == "malformed_row":
            assert got["row"] is None or "image" not in got["row"], name
        elif reason == "missing_file":
            assert got["image"] is None, name
        elif reason == "empty":
            assert got["image"] == b"", name
        elif reason == "not_an_image":
            with pytest.raises(UnidentifiedImageError):
                Image.open(io.BytesIO(got["image"]))
        elif reason == "decompression_bomb":
            with pytest.raises(Image.DecompressionBombError):
                Image.open(io.BytesIO(got["image"]))
        elif reason == "truncated":
            img = Image.open(io.BytesIO(got["image"]))  # the header is intact ...
            with pytest.raises(OSError):
                img.load()  # ... the pixels are not
        elif reason == "undecodable_text":
            _decode(got["image"])
            with pytest.raises(UnicodeDecodeError):
                got["caption"].decode("utf-8")
        else:
            assert reason is None, f"{name}: unknown reason {reason}"
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = _decode(got["image"])  # every valid image decodes, every caption is UTF-8
            assert img.width >= 1 and img.height >= 1
            got["caption"].decode("utf-8")


def test_tars_parse_with_webdataset(corpus):
    import webdataset as wds

    t = corpus.truth
    for tar in corpus.tars:
        names = [n for n in t.inputs if n.startswith(f"tars/{tar.name}#")]
        samples = list(wds.WebDataset(str(tar), shardshuffle=False))
        assert [f"tars/{tar.name}#{s['__key__']}" for s in samples] == names
        for s in samples:
            name = f"tars/{tar.name}#{s['__key__']}"
            if name not in t.corrupt:
                assert {"jpg", "txt", "json"} <= set(s), name
                meta = json.loads(s["json"])
                assert meta["caption"] == s["txt"].decode("utf-8")


def _valid_images(corpus) -> dict[str, Image.Image]:
    return {n: _decode(_resolve(corpus, n)["image"]) for n in corpus.truth.inputs if n not in corpus.truth.corrupt}


def test_sizes_cover_many_aspect_ratios(corpus):
    images = _valid_images(corpus)
    buckets = {round(2 * math.log2(img.width / img.height)) for img in images.values()}  # half-octave buckets
    assert len(buckets) >= 8, sorted(buckets)
    sides = [s for img in images.values() for s in img.size]
    assert min(sides) <= 20 and max(sides) >= 2000


def test_duplicates_are_exactly_the_planted_ones(corpus):
    t = corpus.truth
    images = _valid_images(corpus)
    raw = {n: _resolve(corpus, n) for n in images}
    for kind, group in zip(t.duplicate_kinds, t.duplicate_groups):
        first, *rest = group
        for other in rest:
            same_bytes = raw[first]["image"] == raw[other]["image"]
            close = hamming(phash64(images[first]), phash64(images[other]))
            if kind in ("exact", "cross_layout"):
                assert same_bytes and raw[first]["caption"] == raw[other]["caption"], (first, other)
            elif kind in ("reencoded", "resized"):
                assert not same_bytes and close <= 6 and raw[first]["caption"] == raw[other]["caption"]
            else:  # near_caption: different images, captions a couple of words apart
                a, b = raw[first]["caption"].decode().split(), raw[other]["caption"].decode().split()
                assert close > 12 and len(a) == len(b) and sum(x != y for x, y in zip(a, b)) == 2
    # Apart from the planted groups, no two valid images are alike (bytes or perceptual hash).
    same_group = {frozenset(p) for g, k in zip(t.duplicate_groups, t.duplicate_kinds) if k != "near_caption"
                  for p in itertools.combinations(g, 2)}
    hashed = {n: phash64(img) for n, img in images.items() if min(img.size) >= 8}
    for a, b in itertools.combinations(sorted(images), 2):
        if frozenset((a, b)) in same_group:
            continue
        assert raw[a]["image"] != raw[b]["image"], (a, b)
        if a in hashed and b in hashed:
            assert hamming(hashed[a], hashed[b]) > 10, (a, b)


def test_captions_good_and_bad(corpus):
    t = corpus.truth
    for name in t.inputs:
        if name in t.corrupt:
            continue
        text = _resolve(corpus, name)["caption"].decode("utf-8")
        rule = t.bad_captions.get(name)
        words = text.split()
        if rule is None:
            assert 6 <= len(words) <= 40 and text.isprintable(), (name, text)
        elif rule == "caption_too_short":
            assert len(words) <= 1
        elif rule == "garbled_text":
            assert text.count("Ã") >= 10
        elif rule == "nonprintable_text":
            assert sum(not c.isprintable() and not c.isspace() for c in text) / len(text) > 0.2
        elif rule == "repetitive_ngrams":
            assert len(words) >= 50 and len(set(words)) <= 3
        elif rule == "repetitive_lines":
            lines = text.splitlines()
            assert len(lines) >= 10 and len(set(lines)) <= 2
        elif rule == "caption_too_long":
            assert len(words) > 2000  # the rule filters' default limit
