"""Benchmark: offline tile-aware packing vs InternVL-2.5 online greedy vs one sample per sequence.

    python benchmarks/bench_packing.py [--n 20000] [--seed 0]

Generates a synthetic but realistic VLM SFT mix (token counts only; no data is read)
and prints a markdown table per budget.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pipeline.packing import (PackingBudget, pack_greedy_online, pack_offline,  # noqa: E402
                              pack_one_per_sequence, pack_stats)

TOKENS_PER_TILE = 256  # InternVL: a 448px tile is 256 tokens after pixel shuffle

# kind -> share of the corpus
MIX = {"caption": 0.35, "ocr": 0.20, "document": 0.10, "interleaved": 0.15, "text": 0.20}


def _image_tiles(rng, lo: int, hi: int) -> int:
    """Dynamic-resolution tiles for one image, plus the thumbnail when it was split."""
    n = int(rng.integers(lo, hi + 1))
    return n + 1 if n > 1 else 1


def make_mix(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per-sample (tokens, tiles, kind) for n samples; deterministic for a seed."""
    rng = np.random.default_rng(seed)
    kinds = rng.choice(list(MIX), size=n, p=list(MIX.values())).tolist()
    tokens = np.zeros(n, dtype=np.int64)
    tiles = np.zeros(n, dtype=np.int64)
    for s, kind in enumerate(kinds):
        if kind == "caption":  # short caption, one image
            text, k = rng.integers(20, 81), _image_tiles(rng, 1, 12)
        elif kind == "ocr":
            text, k = rng.integers(100, 1501), _image_tiles(rng, 1, 12)
        elif kind == "document":  # dense page(s): many tiles, long answer
            text, k = rng.integers(500, 4001), _image_tiles(rng, 4, 12)
        elif kind == "interleaved":  # 2-6 images sharing a ~12 tile budget
            n_img = int(rng.integers(2, 7))
            text = rng.integers(100, 1201)
            k = sum(_image_tiles(rng, 1, max(1, 12 // n_img)) for _ in range(n_img))
        else:  # text-only, long-tailed length
            text, k = min(int(rng.lognormal(7.0, 0.8)) + 50, 7000), 0
        tokens[s] = int(text) + TOKENS_PER_TILE * k
        tiles[s] = k
    return tokens, tiles, kinds


def bench(tokens, tiles, budget: PackingBudget, seed: int) -> list[dict]:
    rows = []
    packers = {
        "one per sequence": lambda: pack_one_per_sequence(tokens, tiles, budget),
        "greedy online (InternVL 2.5, buffer 16)": lambda: pack_greedy_online(tokens, tiles, budget, 16, seed),
        "greedy online (buffer 64)": lambda: pack_greedy_online(tokens, tiles, budget, 64, seed),
        "offline BFD + repack (ours)": lambda: pack_offline(tokens, tiles, budget, seed),
    }
    for name, run in packers.items():
        t0 = time.perf_counter()
        result = run()
        dt = time.perf_counter() - t0
        rows.append({"packer": name, "seconds": dt, **pack_stats(result, tokens, tiles, budget).as_dict()})
    base = rows[0]["padding_tokens"]
    for r in rows:
        r["saved"] = 1 - r["padding_tokens"] / base if base else 0.0
    return rows


def to_markdown(rows, budget: PackingBudget) -> str:
    lines = [f"**max_tokens={budget.max_tokens}, max_tiles={budget.max_tiles}**", "",
             "| packer | sequences | token fill | tile fill | padding tokens | padding saved vs 1/seq | time (s) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['packer']} | {r['n_packs']:,} | {r['token_fill']:.4f} | {r['tile_fill']:.4f} "
                     f"| {r['padding_tokens']:,} | {r['saved']:.1%} | {r['seconds']:.2f} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    tokens, tiles, kinds = make_mix(args.n, args.seed)
    share = {k: kinds.count(k) / len(kinds) for k in MIX}
    print(f"{args.n:,} samples, seed {args.seed}: mean {tokens.mean():.0f} tokens, {tiles.mean():.2f} tiles; "
          + ", ".join(f"{k} {v:.0%}" for k, v in share.items()) + "\n")
    for max_tokens in (8192, 16384):
        budget = PackingBudget(max_tokens=max_tokens, max_tiles=48)
        print(to_markdown(bench(tokens, tiles, budget, args.seed), budget) + "\n")


if __name__ == "__main__":
    main()
