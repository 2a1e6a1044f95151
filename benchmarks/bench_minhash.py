"""Benchmark: our vectorised MinHash+LSH+verify against single-process datasketch.

Corpus: real plain-text documents from /usr/share/doc (``*.gz`` gunzipped), those
with >= 50 words, up to ``--max-docs``. Planted near-duplicates: for ~500 random
documents an edited copy (~1.5% of words deleted/replaced/inserted, a couple of
lines swapped) is appended; a planted pair counts as ground truth only if its TRUE
Jaccard (5-word shingles) is >= 0.8.

Precision = found pairs whose true Jaccard >= 0.8 / found pairs (natural duplicates
in the corpus count as correct when they really are >= 0.8 similar); recall = planted
pairs found / planted pairs. Throughput = documents / end-to-end seconds.

    .venv/bin/python benchmarks/bench_minhash.py
"""
from __future__ import annotations

import argparse
import gzip
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from filters.dedup import jaccard, near_duplicate_text_pairs, shingle_hashes, words  # noqa: E402

NGRAM, THRESHOLD, NUM_PERM = 5, 0.8, 128
SKIP_EXT = {".png", ".gif", ".jpg", ".svg", ".pdf", ".ico", ".css", ".js", ".woff", ".ttf"}


def load_corpus(root: str, max_docs: int, seed: int, min_words: int = 50, target_words: int = 200) -> list[str]:
    """Documents from the text files under ``root``.

    Big files (changelogs, manuals) are cut at blank lines into documents of about
    ``target_words`` words (whole paragraphs), so a 2 MB changelog is many documents of
    realistic size instead of one giant one. Documents with < ``min_words`` words are
    dropped; a seeded random ``max_docs`` of them are kept, in file order.
    """
    docs = []
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            path = Path(dirpath) / name
            if path.suffix.lower() in SKIP_EXT or path.is_symlink():
                continue
            try:
                raw = gzip.open(path).read() if name.endswith(".gz") else path.read_bytes()
            except OSError:
                continue
            if b"\x00" in raw[:4096]:
                continue  # binary
            text = raw.decode("utf-8", errors="replace")
            cur, n = [], 0
            for para in text.split("\n\n"):
                cur.append(para)
                n += len(para.split())
                if n >= target_words:
                    docs.append("\n\n".join(cur))
                    cur, n = [], 0
            if cur:
                docs.append("\n\n".join(cur))
    docs = [d for d in docs if len(words(d)) >= min_words]
    if len(docs) > max_docs:
        keep = sorted(random.Random(seed).sample(range(len(docs)), max_docs))
        docs = [docs[i] for i in keep]
    return docs


def edit(text: str, rng: random.Random, rate: float) -> str:
    """A near-duplicate: delete/replace/insert ~rate of the words, swap two lines."""
    lines = text.splitlines()
    if len(lines) > 4:
        i, j = rng.sample(range(len(lines)), 2)
        lines[i], lines[j] = lines[j], lines[i]
    toks = "\n".join(lines).split(" ")
    out = []
    for t in toks:
        r = rng.random()
        if r < rate / 3:
            continue  # delete
        if r < 2 * rate / 3:
            out.append(rng.choice(["lorem", "ipsum", "dolor", "amet", "foo", "bar"]))  # replace
            continue
        out.append(t)
        if r < rate:
            out.append(rng.choice(["quux", "zork", "plugh", "xyzzy"]))  # insert
    return " ".join(out)


def exact_sets(texts: list[str]) -> list[np.ndarray]:
    values, off = shingle_hashes(texts, NGRAM, "word")
    return [np.unique(values[off[i] : off[i + 1]]) for i in range(len(texts))]


def run_datasketch(texts: list[str]) -> tuple[set[tuple[int, int]], float]:
    from datasketch import MinHash, MinHashLSH

    t0 = time.perf_counter()
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    pairs = set()
    for i, text in enumerate(texts):
        w = words(text)
        sh = [" ".join(w[k : k + NGRAM]) for k in range(max(len(w) - NGRAM + 1, 1))] if w else []
        m = MinHash(num_perm=NUM_PERM)
        m.update_batch([s.encode("utf-8") for s in sh])
        for j in lsh.query(m):
            pairs.add((j, i))
        lsh.insert(i, m)
    return pairs, time.perf_counter() - t0


def run_ours(texts: list[str]) -> tuple[set[tuple[int, int]], float]:
    t0 = time.perf_counter()
    p = near_duplicate_text_pairs(texts, threshold=THRESHOLD, num_perm=NUM_PERM, ngram=NGRAM, unit="word")
    return {(int(a), int(b)) for a, b in p}, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default="/usr/share/doc")
    ap.add_argument("--max-docs", type=int, default=20000)
    ap.add_argument("--planted", type=int, default=500)
    ap.add_argument("--edit-rate", type=float, default=0.015)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    base = load_corpus(args.root, args.max_docs, args.seed)
    texts = list(base)
    sources = rng.sample(range(len(base)), min(args.planted, len(base)))
    planted_all = []
    for s in sources:
        planted_all.append((s, len(texts)))
        texts.append(edit(base[s], rng, args.edit_rate))
    sets = exact_sets(texts)
    planted = {p for p in planted_all if jaccard(sets[p[0]], sets[p[1]]) >= THRESHOLD}
    n_words = sum(len(words(t)) for t in texts)
    print(f"corpus: {len(base)} docs from {args.root} + {len(planted_all)} edited copies "
          f"({len(planted)} with true Jaccard >= {THRESHOLD}); {n_words / len(texts):.0f} words/doc")

    def score(found: set[tuple[int, int]]) -> tuple[float, float]:
        true = sum(jaccard(sets[a], sets[b]) >= THRESHOLD for a, b in found)
        return (true / len(found) if found else 1.0), len(found & planted) / len(planted)

    rows = []
    for name, fn in (("datasketch MinHash+MinHashLSH (1 process)", run_datasketch),
                     ("tessera near_duplicate_text_pairs (1 process)", run_ours)):
        best, found = np.inf, set()
        for _ in range(args.repeats):
            found, sec = fn(texts)
            best = min(best, sec)
        prec, rec = score(found)
        rows.append((name, len(texts) / best, best, len(found), prec, rec))

    print()
    print("| method | docs/s | seconds | pairs found | precision | planted recall |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, dps, sec, k, prec, rec in rows:
        print(f"| {name} | {dps:,.0f} | {sec:.2f} | {k} | {prec:.3f} | {rec:.3f} |")
    print(f"\nspeed-up: {rows[1][1] / rows[0][1]:.1f}x (best of {args.repeats} runs each)")


if __name__ == "__main__":
    main()
