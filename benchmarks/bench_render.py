"""Rendering throughput of the contained Chromium pool on synthetic HTML documents.

Measures pages/s (screenshot + DOM ground truth) for one process with contexts
reused (pages_per_context), and with a fresh context per page; per core = pages/s
divided by the cores the browser process tree could use. Usage:
    python benchmarks/bench_render.py [--pages 40]
"""
from __future__ import annotations

import argparse
import os
import random
import time

from pipeline.render.browser import BrowserConfig, BrowserPool
from pipeline.sources.html_generator import generate_document


def run(pages: int, pages_per_context: int, scale: float) -> dict:
    docs = [generate_document(random.Random(f"bench:{i}"), ["en", "de", "zh", "ja"]) for i in range(pages)]
    pool = BrowserPool(BrowserConfig(pages_per_context=pages_per_context, device_scale_factor=scale))
    pool.render("<p>warm up</p>", 400, 300)  # browser launch is not a page's cost
    start = time.perf_counter()
    for html, meta in docs:
        pool.render(html, meta["page_width"], 1200)
    secs = time.perf_counter() - start
    stats = pool.stats
    pool.close()
    return {"pages": pages, "pages_per_context": pages_per_context, "scale": scale, "seconds": round(secs, 2),
            "pages_per_s": round(pages / secs, 2), "contexts": stats.contexts}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=40)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    for ppc, scale in ((50, 1.0), (1, 1.0), (50, 2.0)):
        r = run(args.pages, ppc, scale)
        print(f"{r} per_core={r['pages_per_s'] / cores:.2f} (cores={cores})")


if __name__ == "__main__":
    main()
