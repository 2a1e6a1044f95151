"""Benchmark: LLM judge throughput against a local OpenAI-compatible server, and cache-hit cost.

    python benchmarks/bench_judge.py [--n 400] [--latency-ms 50] [--concurrency 1,4,16,64]

The server (filters/scorers/judges/fake_server.py, 127.0.0.1 only) answers every request
after a fixed latency standing in for model time, so the numbers measure the client
side: how well concurrency hides latency, and what the judge itself costs per sample
(prompt building, HTTP, parsing, cache writes). Prints a markdown table.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from filters.scorers.base import ScoreInput  # noqa: E402
from filters.scorers.judge import build_judge_scorer  # noqa: E402
from schemas import Turn  # noqa: E402


def inputs(n: int, tag: str) -> list[ScoreInput]:
    return [ScoreInput(f"{tag}-{i:06d}", "image_text", f"A photo of object {i} on a table.",
                       [Turn("user", "<image>\nDescribe the image."), Turn("assistant", f"Object {i} on a table.")],
                       []) for i in range(n)]


class ServerProcess:
    """The fake server in its own process, so its threads do not share the client's GIL."""

    def __init__(self, latency_ms: float):
        self.proc = subprocess.Popen([sys.executable, "-m", "filters.scorers.judges.fake_server", "--latency-ms",
                                      str(latency_ms)], stdout=subprocess.PIPE, text=True,
                                     cwd=Path(__file__).resolve().parent.parent)
        self.url = self.proc.stdout.readline().strip()
        self.requests = 0

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def run(server: ServerProcess, cache: str, n: int, concurrency: int, batch: int) -> tuple[float, float, int]:
    """(cold seconds, warm seconds, requests) for n samples: first all misses, then all hits."""
    judge = build_judge_scorer({"url": server.url, "model": "fake-judge", "cache": cache,
                                "concurrency": concurrency})
    data = inputs(n, f"c{concurrency}")
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        judge.score(data[i : i + batch])
    cold = time.perf_counter() - t0
    requests = judge.backend.requests
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        judge.score(data[i : i + batch])
    warm = time.perf_counter() - t0
    assert judge.backend.requests == requests and judge.stats.cache_hits == n, "cache hits must not reach the server"
    judge.close()
    return cold, warm, requests


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=400)
    p.add_argument("--latency-ms", type=float, default=50.0)
    p.add_argument("--concurrency", default="1,4,16,64")
    p.add_argument("--batch", type=int, default=128, help="samples per score() call (the runner's batch_size)")
    args = p.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    print(f"n={args.n} samples, server latency {args.latency_ms:.0f} ms, batch {args.batch}\n")
    print("| concurrency | requests | cold: samples/s | cold: ms/sample | ideal samples/s | "
          "cache hits: µs/sample |")
    print("|---:|---:|---:|---:|---:|---:|")
    server = ServerProcess(args.latency_ms)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for c in levels:
                cold, warm, req = run(server, f"{tmp}/cache-{c}.sqlite", args.n, c, args.batch)
                ideal = c / (args.latency_ms / 1000)
                print(f"| {c} | {req} | {args.n / cold:,.1f} | {1000 * cold / args.n:.2f} | {ideal:,.0f} | "
                      f"{1e6 * warm / args.n:,.0f} |")
    finally:
        server.close()


if __name__ == "__main__":
    main()
