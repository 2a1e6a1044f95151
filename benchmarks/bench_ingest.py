"""Ingest throughput for local image-text data, and where the time goes.

    python benchmarks/bench_ingest.py [--images 1500] [--workers 1 2]

Builds the demo corpus with N generated images (plus its photos, duplicates and
corrupt files), then ingests it in-process (one core, no Ray) and on an embedded Ray
with 1 and 2 workers. Reports samples/s, samples/s per worker, and the summed worker
time per step (read, decode, media = hash + pHash + tiling + payload write, sample =
conversation + token count, rules, write). Prints a markdown table.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

from jobs.demo import corpus_texts, demo_spec
from jobs.demo_corpus import build_demo_corpus
from jobs.ingest_job import run_ingest
from jobs.spec import parse_spec
from model.tokenizer import build_tokenizer


def run(corpus, tok_dir: str, work: str, mode: str, workers: int) -> dict:
    out = tempfile.mkdtemp(dir=work)
    spec_dict = demo_spec(out, corpus)
    spec_dict["tokenizer"] = tok_dir
    spec_dict["partition_size"] = 64
    spec_dict["workers"] = workers
    spec = parse_spec(spec_dict)
    start = time.perf_counter()
    summary = run_ingest(spec, mode=mode)
    wall = time.perf_counter() - start
    shutil.rmtree(out)
    return {"mode": mode, "workers": workers, "inputs": summary.inputs, "samples": summary.samples,
            "wall": wall, "ingest": summary.seconds["ingest"], "steps": summary.worker_seconds}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=1500)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="tessera-bench-ingest-")
    corpus = build_demo_corpus(os.path.join(work, "corpus"), n_generated=args.images)
    tok_dir = build_tokenizer(os.path.join(work, "tok"), texts=corpus_texts(str(corpus.root)), vocab_size=2000)
    from pipeline.executor import ensure_ray

    ensure_ray()  # the cluster's start (~6 s) is paid once per session, not per job
    results = [run(corpus, tok_dir, work, "local", 1)]
    results += [run(corpus, tok_dir, work, "ray", w) for w in args.workers]
    print(f"load average at end: {os.getloadavg()}")
    print("| mode | workers | inputs | samples | ingest s | samples/s | samples/s per worker |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        rate = r["samples"] / r["ingest"]
        print(f"| {r['mode']} | {r['workers']} | {r['inputs']} | {r['samples']} | {r['ingest']:.1f} | "
              f"{rate:.0f} | {rate / r['workers']:.0f} |")
    steps = results[0]["steps"]
    total = sum(steps.values())
    print("\nwhere one worker's time goes (in-process run):\n\n| step | seconds | share |\n|---|---|---|")
    for name, sec in sorted(steps.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {sec:.2f} | {sec / total:.0%} |")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
