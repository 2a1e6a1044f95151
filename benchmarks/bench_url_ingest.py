"""URL-list ingest, side by side with img2dataset, on the same list from a loopback server.

    python benchmarks/bench_url_ingest.py [--urls 2000] [--work /tmp/tessera-bench-urls]
        [--img2dataset /tmp/i2d-venv/bin/img2dataset]

1. Generates N JPEGs (0.06-4 MP, varied aspect, photo-like noise; cached in --work) and
   a URL list where 3% are broken: 404s, permanent 500s, and HTML served as image/jpeg
   (failures both tools must reject; truncated JPEGs are left out because OpenCV
   half-decodes them and img2dataset would count them as successes).
2. Serves them from a loopback HTTP server (127.0.0.1, a separate process).
3. Runs img2dataset (its own venv, so its pins never touch ours: see docs/benchmarks.md)
   with image_size 448, keep_ratio, webdataset output, 2 processes x 32 threads.
4. Runs a Tessera ingest of the same list on the embedded Ray (2 workers): fetch,
   sniff, decode, sha256, pHash, tiling, payload store, token counts, rule scores, catalog.
5. Prints samples/s, accepted/rejected for both, whether the accepted URL sets are equal,
   and the load average (the machine may be shared). ``--repeats N`` runs N rounds,
   alternating which tool goes first, and prints the ratio of each round and the median.
"""
from __future__ import annotations

import argparse
import glob
import json
import multiprocessing as mp
import os
import random
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

BROKEN_KINDS = ("missing", "error500", "html")


def make_image(args: tuple[int, str]) -> None:
    """One photo-like JPEG: smooth colour fields plus sensor-like noise (realistic sizes)."""
    i, path = args
    rng = np.random.default_rng(i)
    megapixels = rng.uniform(0.06, 4.0)
    aspect = float(np.exp(rng.uniform(np.log(0.5), np.log(2.2))))
    w = max(32, int((megapixels * 1e6 * aspect) ** 0.5))
    h = max(32, int(megapixels * 1e6 / w))
    base = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((w, h), Image.Resampling.BICUBIC)
    noise = rng.normal(0, 12, (h, w, 3))
    pixels = np.clip(np.asarray(base, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, "JPEG", quality=85)


def build_corpus(work: str, n: int) -> str:
    """Images in work/files, the URL list's rows (path part) in work/rows.json; cached."""
    rows_file = os.path.join(work, f"rows-{n}.json")
    if os.path.exists(rows_file):
        return rows_file
    files = os.path.join(work, "files")
    os.makedirs(files, exist_ok=True)
    rng = random.Random(0)
    n_broken = round(n * 0.03)
    broken = set(rng.sample(range(n), n_broken))
    jobs, rows = [], []
    for i in range(n):
        if i in broken:
            kind = BROKEN_KINDS[len([b for b in broken if b < i]) % len(BROKEN_KINDS)]
            rows.append({"path": f"/{kind}/{i}.jpg", "caption": f"broken item {i} of kind {kind}"})
            continue
        name = f"{i:06d}.jpg"
        jobs.append((i, os.path.join(files, name)))
        rows.append({"path": f"/files/{name}", "caption": f"photo {i}: a synthetic scene with colour fields and grain"})
    todo = [j for j in jobs if not os.path.exists(j[1])]
    with mp.Pool(2) as pool:
        pool.map(make_image, todo, chunksize=16)
    with open(rows_file, "w") as f:
        json.dump(rows, f)
    return rows_file


def serve(files: str, port_pipe, max_seconds: float) -> None:
    """The server process: static files, and the three kinds of broken URL."""
    from aiohttp import web

    from pipeline.sources.fetch_testing import LoopbackServer

    html = b"<!doctype html><html><body><h1>404 - the image you want is gone</h1></body></html>"
    # Served from memory: from disk, this VM's disk (~80 MB/s) capped both tools at ~150 files/s.
    cache = {}
    for name in os.listdir(files):
        with open(os.path.join(files, name), "rb") as f:
            cache[name] = f.read()

    async def handler(request):
        kind, _, name = request.path.strip("/").partition("/")
        if kind == "files" and name in cache:
            return web.Response(body=cache[name], content_type="image/jpeg")
        if kind == "error500":
            return web.Response(status=500)
        if kind == "html":
            return web.Response(body=html, content_type="image/jpeg")
        return web.Response(status=404)

    with LoopbackServer(handler) as srv:
        port_pipe.send(srv.port)
        time.sleep(max_seconds)  # bounded: the benchmark terminates it much earlier


def run_img2dataset(exe: str, url_list: str, out: str) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [exe, "--url_list", url_list, "--input_format", "parquet", "--url_col", "url", "--caption_col", "caption",
           "--output_format", "webdataset", "--output_folder", out, "--processes_count", "2", "--thread_count", "32",
           "--image_size", "448", "--resize_mode", "keep_ratio", "--number_sample_per_shard", "250",
           "--enable_wandb", "False", "--distributor", "multiprocessing"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"img2dataset failed:\n{proc.stderr[-3000:]}")
    table = pa.concat_tables([pq.read_table(p, columns=["url", "status"]) for p in glob.glob(f"{out}/*.parquet")])
    ok = {u for u, s in zip(table["url"].to_pylist(), table["status"].to_pylist()) if s == "success"}
    return {"wall": wall, "accepted": ok, "rejected": table.num_rows - len(ok)}


def run_tessera(url_list: str, work: str, tokenizer: str, partition_size: int) -> dict:
    from jobs.ingest_job import run_ingest
    from jobs.spec import parse_spec
    from pipeline import catalog
    from pipeline.dataset import Dataset

    dataset = os.path.join(work, "tessera-dataset")
    shutil.rmtree(dataset, ignore_errors=True)
    spec = parse_spec({
        "name": "bench-urls", "dataset": dataset, "tokenizer": tokenizer, "partition_size": partition_size, "workers": 2,
        "sources": [{"name": "web", "type": "web_urls", "path": url_list, "concurrency": 32,
                     "per_host_concurrency": 32, "timeout_s": 10.0}],
    })
    start = time.perf_counter()
    summary = run_ingest(spec, mode="ray")
    wall = time.perf_counter() - start
    rows = catalog.query(Dataset(dataset), "SELECT input_ref FROM samples").to_pylist()
    return {"wall": wall, "ingest": summary.seconds["ingest"], "accepted": {r["input_ref"] for r in rows},
            "rejected": summary.rejects, "reasons": summary.rejects_by_reason, "steps": summary.worker_seconds,
            "phases": summary.seconds}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--urls", type=int, default=2000)
    parser.add_argument("--work", default="/tmp/tessera-bench-urls")
    parser.add_argument("--img2dataset", default="/tmp/i2d-venv/bin/img2dataset")
    parser.add_argument("--skip-img2dataset", action="store_true")
    parser.add_argument("--repeats", type=int, default=1, help="rounds of both tools, alternating who goes first")
    # 500: each of the 2 workers gets 2 partitions. A partition ends only when its permanent-5xx
    # URLs have used up their retries (~3 s of backoff); 500 URLs of decode work hide that wait,
    # 250 did not (workers then sat ~10 s waiting on fetches). img2dataset keeps 250 per shard
    # so both of its processes get shards (its own default is 10,000).
    parser.add_argument("--partition-size", type=int, default=500, help="URLs per Tessera partition")
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    t0 = time.perf_counter()
    with open(build_corpus(args.work, args.urls)) as f:
        rows = json.load(f)
    print(f"corpus ready in {time.perf_counter() - t0:.0f}s: {len(rows)} URLs")

    parent, child = mp.Pipe()
    server = mp.get_context("spawn").Process(target=serve, args=(os.path.join(args.work, "files"), child, 3600), daemon=True)
    server.start()
    port = parent.recv()
    try:
        table = pa.Table.from_pylist([{"url": f"http://127.0.0.1:{port}{r['path']}", "caption": r["caption"]} for r in rows])
        url_list = os.path.join(args.work, "urls.parquet")
        pq.write_table(table, url_list)

        from model.tokenizer import build_tokenizer
        from pipeline.executor import ensure_ray

        tokenizer = build_tokenizer(os.path.join(args.work, "tokenizer"))
        t = time.perf_counter()
        ensure_ray(num_cpus=2)
        print(f"embedded Ray started in {time.perf_counter() - t:.1f}s (not counted)")
        rounds = []
        for k in range(args.repeats):
            # Alternate who goes first: on a shared machine the load drifts within a round.
            order = ["img2dataset", "tessera"] if k % 2 == 0 else ["tessera", "img2dataset"]
            results = {}
            for tool in order:
                if tool == "img2dataset" and args.skip_img2dataset:
                    continue
                load = os.getloadavg()[0]
                if tool == "img2dataset":
                    r = run_img2dataset(args.img2dataset, url_list, os.path.join(args.work, "i2d-out"))
                else:
                    r = run_tessera(url_list, args.work, tokenizer, args.partition_size)
                r["load"] = (load, os.getloadavg()[0])
                results[tool] = r
                print(f"round {k + 1} {tool}: {len(r['accepted'])} accepted in {r['wall']:.1f}s; "
                      f"1-min load average {r['load'][0]:.1f} -> {r['load'][1]:.1f}")
            rounds.append(results)
    finally:
        server.terminate()
        server.join()

    print("\n| round | tool | URLs | accepted | rejected | wall s | samples/s | ratio | load avg (1 min) |")
    print("|---|---|---|---|---|---|---|---|---|")
    ratios = []
    for k, results in enumerate(rounds, 1):
        rate = {name: len(r["accepted"]) / r["wall"] for name, r in results.items()}
        ratio = rate["tessera"] / rate["img2dataset"] if "img2dataset" in rate else None
        if ratio is not None:
            ratios.append(ratio)
        for name, r in results.items():
            cell = f"**{ratio:.2f}x**" if name == "tessera" and ratio is not None else ""
            print(f"| {k} | {name} | {len(rows)} | {len(r['accepted'])} | {r['rejected']} | {r['wall']:.1f} | "
                  f"{rate[name]:.1f} | {cell} | {r['load'][0]:.1f} -> {r['load'][1]:.1f} |")
    for k, results in enumerate(rounds, 1):
        tess = results["tessera"]
        print(f"\nround {k} tessera rejects by reason: {tess['reasons']}")
        print(f"round {k} tessera phases (s): { {p: round(v, 1) for p, v in tess['phases'].items()} }")
        print(f"round {k} tessera worker seconds by step (2 workers summed): "
              f"{ {p: round(v, 1) for p, v in tess['steps'].items()} }")
        if "img2dataset" in results:
            print(f"round {k} same accepted URL set: {results['img2dataset']['accepted'] == tess['accepted']}")
    if ratios:
        print(f"\ntessera / img2dataset samples/s per round: {', '.join(f'{r:.2f}x' for r in ratios)}; "
              f"median {statistics.median(ratios):.2f}x")

if __name__ == "__main__":
    main()
