"""Scale: time and peak memory of ingest, dedup and shard on many small synthetic samples;
Ray worker scaling; and the job layer's overhead over calling the pipeline directly.

    python benchmarks/bench_scale.py million [--count 1000000] [--workdir DIR]   # (a)
    python benchmarks/bench_scale.py scaling [--count 20000]                     # (b) and (c)
    python benchmarks/bench_scale.py dedup [--count 1000000]                     # dedup_table alone

(a) ingests ``count`` samples of the ``synthetic`` source (tiny PNGs, captions with
planted duplicates) on an embedded Ray with 2 workers, then shards them. A sampler
thread samples (psutil) twice a second: the driver's RSS and the RSS and PSS summed over
the driver and all its descendants (Ray's GCS, raylet and worker processes; PSS
splits shared pages, such as Ray's object store, between the processes mapping them
instead of counting them once per process). Stages are cut from the job summaries'
timings. Re-running with the same ``--workdir`` resumes the ingest (finished
partitions are skipped) and redoes dedup and shard.

(b) ingests the same ``count`` samples with 1 and 2 Ray workers; (c) the same input
through ``run_ingest(mode="local")``, through ``IngestWorker`` called directly in a loop
over the partitions (no job layer: no manifest, no markers read back, no dedup), and
through Ray with one worker. Prints markdown tables and writes JSON beside the data.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time

import psutil

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jobs.ingest_job import resolve_tokenizer, run_ingest  # noqa: E402
from jobs.shard_job import ShardOptions, run_shard  # noqa: E402
from jobs.spec import parse_spec  # noqa: E402
from pipeline.dataset import Dataset  # noqa: E402

def _memory(proc: psutil.Process) -> tuple[int, int]:
    """(RSS, PSS) in bytes; (0, 0) for a process that is gone meanwhile."""
    try:
        info = proc.memory_full_info()
        return info.rss, info.pss
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0, 0


class MemorySampler(threading.Thread):
    """Samples (time, driver RSS, tree RSS, tree PSS, process count) until stopped."""

    def __init__(self, interval: float = 0.5, log_every: float = 0.0, progress=None):
        super().__init__(daemon=True)
        self.interval, self.samples, self._halt = interval, [], threading.Event()
        self.log_every, self._last_log, self.progress = log_every, time.perf_counter(), progress

    def run(self):
        me = psutil.Process()
        while not self._halt.is_set():
            procs = [me, *me.children(recursive=True)]  # the embedded Ray's processes are our descendants
            mem = [_memory(p) for p in procs]
            self.samples.append((time.perf_counter(), mem[0][0], sum(m[0] for m in mem), sum(m[1] for m in mem), len(procs)))
            if self.log_every and self.samples[-1][0] - self._last_log >= self.log_every:
                self._last_log = self.samples[-1][0]
                self._log()
            self._halt.wait(self.interval)

    def _log(self):
        """A line on stderr per ``log_every`` seconds: a run stopped half-way still leaves figures."""
        window = [s for s in self.samples if s[0] >= self._last_log - self.log_every]
        gib = 2.0**30
        print(f"[memory] t={time.strftime('%H:%M:%S')} driver_rss={max(s[1] for s in window) / gib:.2f}GiB "
              f"all_rss={max(s[2] for s in window) / gib:.2f}GiB all_pss={max(s[3] for s in window) / gib:.2f}GiB "
              f"processes={window[-1][4]} loadavg={open('/proc/loadavg').read().split()[0]}"
              + (f" {self.progress()}" if self.progress else ""), file=sys.stderr, flush=True)

    def stop(self):
        self._halt.set()
        self.join()

    def peak(self, start: float, end: float) -> dict:
        inside = [s for s in self.samples if start <= s[0] <= end] or self.samples[-1:]
        gib = 2.0**30
        return {"driver_rss_gib": round(max(s[1] for s in inside) / gib, 3),
                "all_rss_gib": round(max(s[2] for s in inside) / gib, 3),
                "all_pss_gib": round(max(s[3] for s in inside) / gib, 3),
                "processes": max(s[4] for s in inside)}


def synthetic_spec(dataset: str, count: int, workers: int, partition_size: int) -> dict:
    return {"name": "scale", "dataset": dataset, "partition_size": partition_size, "workers": workers,
            "sources": [{"name": "synth", "type": "synthetic", "count": count, "seed": 0, "image_size": 24}]}


def million(args) -> None:
    from pipeline.executor import ensure_ray

    work = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="tessera-scale-"))
    dataset = os.path.join(work, "dataset")
    spec = parse_spec(synthetic_spec(dataset, args.count, 2, args.partition_size))
    ds = Dataset(dataset)
    sampler = MemorySampler(log_every=60, progress=lambda: f"partitions_done={len(ds.done_partitions(spec.job_id))}")
    sampler.start()
    t0 = time.perf_counter()
    ensure_ray(num_cpus=2)
    t_ray = time.perf_counter()
    ingest = run_ingest(spec, mode="ray")
    t_ingest = time.perf_counter()
    shard_out = os.path.join(work, "shards")
    shutil.rmtree(shard_out, ignore_errors=True)
    shard = run_shard(dataset, ShardOptions(out=shard_out, where="NOT is_duplicate"))
    t_end = time.perf_counter()
    sampler.stop()
    print("\n".join(ingest.lines() + shard.lines()))
    s = ingest.seconds
    cut_list = t_ray + s["list"]
    cut_ingest = cut_list + s["ingest"]
    stages = {
        "ray start": (t0, t_ray), "list + register": (t_ray, cut_list), "ingest": (cut_list, cut_ingest),
        "dedup": (cut_ingest, t_ingest), "shard": (t_ingest, t_end),
    }
    rows = [{"stage": k, "seconds": round(b - a, 1), **sampler.peak(a, b)} for k, (a, b) in stages.items()]
    result = {"count": args.count, "partitions": ingest.partitions, "skipped": ingest.partitions_skipped,
              "samples": ingest.dataset_samples, "duplicates": ingest.dataset_duplicates, "packed": shard.packed,
              "shards": shard.shards, "worker_seconds": ingest.worker_seconds, "stages": rows,
              "loadavg_end": open("/proc/loadavg").read().split()[:3]}
    with open(os.path.join(work, f"scale-{int(time.time())}.json"), "w") as f:
        json.dump(result, f, indent=2)
    print(f"\n{args.count} samples, {ingest.partitions} partitions ({ingest.partitions_skipped} already done), "
          f"workdir {work}, load average at end {result['loadavg_end']}")
    print_table(["stage", "seconds", "driver RSS GiB", "all processes RSS GiB", "all processes PSS GiB", "processes"],
                [[r["stage"], r["seconds"], r["driver_rss_gib"], r["all_rss_gib"], r["all_pss_gib"], r["processes"]]
                 for r in rows])


def print_table(header: list[str], rows: list[list]) -> None:
    """A Markdown table, as docs/benchmarks.md takes it."""
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(v) for v in row) + " |")


def _direct(spec) -> float:
    """IngestWorker over the partitions in a plain loop: the pipeline without the job layer."""
    from pipeline.ingest import IngestWorker

    start = time.perf_counter()
    tok = resolve_tokenizer(spec.tokenizer, Dataset(spec.dataset))
    worker = IngestWorker(spec.to_dict(), tok, spec.job_id)
    n = 0
    for p in [p for s in spec.sources for p in s.build().partitions(spec.partition_size)]:
        n += worker(p).samples
    assert n == spec.sources[0].options["count"], n
    return time.perf_counter() - start


def scaling(args) -> None:
    from pipeline.executor import ensure_ray

    work = tempfile.mkdtemp(prefix="tessera-scaling-")
    ensure_ray(num_cpus=2)  # started once: its start-up (~5 s) is not part of any run below
    results = []

    def one(label: str, mode: str, workers: int):
        spec = parse_spec(synthetic_spec(os.path.join(work, label), args.count, workers, args.partition_size))
        start = time.perf_counter()
        if mode == "direct":
            ingest_s = _direct(spec)
            total = time.perf_counter() - start
            dedup = 0.0
        else:
            summary = run_ingest(spec, mode=mode)
            total = time.perf_counter() - start
            ingest_s, dedup = summary.seconds["ingest"], summary.seconds["dedup"]
        results.append({"run": label, "mode": mode, "workers": workers, "total_s": round(total, 2),
                        "ingest_s": round(ingest_s, 2), "dedup_s": round(dedup, 2),
                        "samples_per_s": round(args.count / ingest_s, 1), "loadavg": os.getloadavg()[0]})
        shutil.rmtree(os.path.join(work, label))
        print(results[-1], flush=True)

    one("ray-1", "ray", 1)
    one("ray-2", "ray", 2)
    one("local", "local", 1)
    one("direct", "direct", 1)
    with open(os.path.join(work, "..", f"scaling-{int(time.time())}.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(f"\n{args.count} synthetic samples, partitions of {args.partition_size}; "
          f"load average at end {open('/proc/loadavg').read().split()[:3]}")
    print_table(["run", "workers", "ingest s", "samples/s", "whole job s (with list + dedup)", "load avg"],
                [[r["run"], r["workers"], r["ingest_s"], r["samples_per_s"], r["total_s"], f"{r['loadavg']:.1f}"]
                 for r in results])
    shutil.rmtree(work)


def dedup_only(args) -> None:
    """``dedup_table`` alone on ``count`` rows shaped like the synthetic source's (no ingest)."""
    import hashlib
    import resource

    import numpy as np
    import pyarrow as pa

    from filters.dedup import DedupConfig, dedup_table
    from pipeline.sources.synthetic import WORDS

    n, rng = args.count, np.random.default_rng(0)
    lens = rng.integers(8, 17, n)
    words = np.array(WORDS, dtype=object)[rng.integers(0, len(WORDS), int(lens.sum()))]
    off = np.r_[0, np.cumsum(lens)]
    texts = [" ".join(words[off[i]:off[i + 1]]) + "." for i in range(n)]
    for i in range(49, n, 50):  # 2% planted exact copies, as the source plants them
        texts[i] = texts[i - 1]
    table = pa.table({
        "sample_id": [hashlib.sha256(str(i).encode()).hexdigest()[:32] for i in range(n)],
        "order_key": pa.array(np.zeros(n, np.int64)),
        "media_sha256": [[hashlib.sha256(b"m%d" % i).hexdigest()] for i in range(n)],
        "media_phash": pa.array([[int(x)] for x in rng.integers(0, 2**63, n, dtype=np.uint64)], pa.list_(pa.uint64())),
        "text": texts,
    })
    del texts, words
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    start = time.perf_counter()
    result = dedup_table(table, DedupConfig())
    print(f"dedup_table on {n} rows: {time.perf_counter() - start:.1f} s, "
          f"{sum(result.column('is_duplicate').to_pylist())} duplicates, peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB ({before:.2f} GiB before dedup), "
          f"load average {open('/proc/loadavg').read().split()[:3]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["million", "scaling", "dedup"])
    parser.add_argument("--count", type=int)
    parser.add_argument("--partition-size", type=int, default=2048)
    parser.add_argument("--workdir", help="(million) data folder; the same folder resumes")
    args = parser.parse_args()
    if args.count is None:
        args.count = 20_000 if args.what == "scaling" else 1_000_000
    {"million": million, "scaling": scaling, "dedup": dedup_only}[args.what](args)


if __name__ == "__main__":
    main()
