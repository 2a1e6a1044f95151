"""Benchmarks of the CLIP scorer and of every dedup signal. Results: docs/bench/clip.md.

    .venv/bin/python benchmarks/bench_clip.py speed [--model ViT-B-32] [--n 256] [--batch 64]
    .venv/bin/python benchmarks/bench_clip.py speed --device cuda --batch 256 --n 4096   # on a GPU
    .venv/bin/python benchmarks/bench_clip.py dedup [--checkpoint PATH_OR_TAG]

``speed``: images/s of Tessera's scoring path (payload bytes -> decode + preprocess on
loader threads, overlapping fixed-size batched inference, as ``ScoreWorker`` runs it)
against a naive loop (decode, preprocess, encode image and text one sample at a time)
with the same open_clip model. Random weights unless --checkpoint: speed does not care.

``dedup``: precision/recall of each dedup signal on planted duplicates of distinct
synthetic images (the demo generator): JPEG re-encode, 0.5x resize, 85% centre crop,
and a paraphrased caption (on a re-encoded image, so the image is not identical).
Recall of a signal for a kind = planted pairs of that kind the signal links; precision =
linked pairs that are planted (every linked pair counts: a cluster of m has m(m-1)/2).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from filters.scorers.base import ScoreInput  # noqa: E402
from pipeline import storage  # noqa: E402
from schemas import MediaRef  # noqa: E402


def synthetic(n: int, seed: int = 0):
    from jobs.demo_images import generate

    rng = random.Random(seed)
    return [generate(rng, i, (rng.randint(200, 480), rng.randint(200, 480))) for i in range(n)]


def jpeg(img, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def clip_options(args) -> dict:
    opts = {"model": args.model, "device": args.device, "infer_batch": args.batch}
    return opts | ({"checkpoint": args.checkpoint} if args.checkpoint else {"allow_random_weights": True})


# ---------------------------------------------------------------- speed

def bench_speed(args) -> None:
    import torch

    from pipeline.image_io import decode_image
    from pipeline.score_runner import ScoreWorker

    images = synthetic(min(args.n, 64))
    root = tempfile.mkdtemp(prefix="bench-clip-")
    inputs = []
    for i in range(args.n):
        img = images[i % len(images)]
        data = jpeg(img.image.rotate(i // len(images) * 7, expand=True))  # distinct bytes per sample
        sha = hashlib.sha256(data).hexdigest()
        storage.atomic_write_bytes(f"{root}/payload/{sha}.jpg", data)
        media = MediaRef(f"payload/{sha}.jpg", sha, "jpeg", 0, 0, len(data), 0, 1)
        inputs.append(ScoreInput(f"s{i:06d}", "image_text", img.caption, [], [media]))
    worker = ScoreWorker(root, "clip", clip_options(args), "bench", batch_size=args.batch,
                         loader_threads=args.threads)
    scorer = worker.scorer
    scorer.score([worker._load(ScoreInput("w", "image_text", "warm up", [], [inputs[0].media[0]]))])  # load model

    def fresh():
        return [ScoreInput(x.sample_id, x.kind, x.text, [], x.media) for x in inputs]

    t0 = time.perf_counter()
    n = sum(len(scorer.score(b)) for b in worker._loaded_batches(fresh()))
    ours = n / (time.perf_counter() - t0)

    model, preprocess, tokenizer, device = scorer._model, scorer._preprocess, scorer._tokenizer, scorer.device
    n_naive = min(args.n, args.naive_n)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for x in inputs[:n_naive]:
            img = decode_image(storage.read_bytes(f"{root}/{x.media[0].uri}")).image
            im = model.encode_image(preprocess(img)[None].to(device, scorer._dtype))
            tx = model.encode_text(tokenizer([x.text]).to(device))
            float(torch.nn.functional.cosine_similarity(im.float(), tx.float()))
    naive = n_naive / (time.perf_counter() - t0)
    print(f"model {args.model} on {device} ({torch.get_num_threads()} torch threads), batch {args.batch}, "
          f"{args.threads} loader threads")
    print("| method | images | images/s |\n|---|---:|---:|")
    print(f"| naive per-image open_clip loop | {n_naive} | {naive:.1f} |")
    print(f"| tessera ScoreWorker path | {n} | {ours:.1f} |")
    print(f"speed-up {ours / naive:.2f}x")


# ---------------------------------------------------------------- dedup P/R

SYNONYMS = {"photo": "picture", "image": "picture", "showing": "depicting", "large": "big", "small": "little",
            "a": "one", "with": "having", "on": "upon", "and": "plus"}


def paraphrase(text: str) -> str:
    words = text.split()
    swapped = [SYNONYMS.get(w.lower(), w) for w in words]
    return " ".join(swapped[1:] + swapped[:1]) if len(swapped) > 4 else " ".join(swapped) + " indeed"


def bench_dedup(args) -> None:
    import pyarrow as pa

    from filters.dedup import DedupConfig, dedup_table, phash64
    from filters.dedup.semantic import SemDedupConfig, semantic_pairs
    from filters.scorers.registry import build_scorer
    from pipeline.image_io import decode_image
    from schemas.dedup import SIGNALS

    base = synthetic(args.n_base, seed=1)
    rng = random.Random(0)
    samples, planted = [], []  # samples: (bytes, caption); planted: (i, j, kind)
    for b in base:
        samples.append((jpeg(b.image), b.caption))
    kinds = ["reencoded", "resized", "cropped", "paraphrased"]
    for i in rng.sample(range(len(base)), min(args.n_dup, len(base))):
        img, cap = base[i].image, base[i].caption
        kind = kinds[len(planted) % len(kinds)]
        w, h = img.size
        if kind == "reencoded":
            new = (jpeg(img, 50), cap)
        elif kind == "resized":
            new = (jpeg(img.resize((w // 2, h // 2))), cap)
        elif kind == "cropped":
            new = (jpeg(img.crop((int(w * .075), int(h * .075), int(w * .925), int(h * .925)))), cap)
        else:
            new = (jpeg(img, 75), paraphrase(cap))
        planted.append((i, len(samples), kind))
        samples.append(new)
    decoded = [decode_image(d).image for d, _ in samples]
    n = len(samples)
    table = pa.table({
        "sample_id": [f"s{i:05d}" for i in range(n)], "order_key": [0] * n,
        "media_sha256": [[hashlib.sha256(d).hexdigest()] for d, _ in samples],
        "media_phash": pa.array([[phash64(im)] for im in decoded], pa.list_(pa.uint64())),
        "text": [c for _, c in samples]})
    scorer = build_scorer("clip", clip_options(args))
    t0 = time.perf_counter()
    rows = scorer.score([ScoreInput(f"s{i}", "image_text", c, [], [], [im]) for i, ((_, c), im)
                         in enumerate(zip(samples, decoded))])
    emb = np.stack([np.asarray(r["clip_image_emb"], np.float32) for r in rows])
    t_clip = time.perf_counter() - t0
    pairs = semantic_pairs(emb, SemDedupConfig(threshold=args.threshold))
    out = dedup_table(table, DedupConfig(duplicate_signals=SIGNALS), {"near_embedding": pairs}).to_pylist()

    truth = {(i, j): k for i, j, k in planted}
    print(f"{len(base)} distinct synthetic images + {len(planted)} planted duplicates; CLIP {scorer.model_id}, "
          f"near_embedding threshold {args.threshold}; CLIP scoring {t_clip:.1f}s")
    print("| signal | linked pairs | precision | " + " | ".join(f"recall {k}" for k in kinds) + " |")
    print("|---|---:|---:|" + "---:|" * len(kinds))
    for sig in (*SIGNALS, "dup_cluster"):
        col = f"{sig}_cluster" if sig != "dup_cluster" else sig
        groups: dict = {}
        for i, r in enumerate(out):
            if r[col] is not None:
                groups.setdefault(r[col], []).append(i)
        linked = {(a, b) for g in groups.values() for x, a in enumerate(g) for b in g[x + 1:]}
        prec = sum(p in truth for p in linked) / len(linked) if linked else float("nan")
        recalls = [np.mean([(i, j) in linked for i, j, k in planted if k == kind]) for kind in kinds]
        print(f"| {sig if sig != 'dup_cluster' else 'all (union-find)'} | {len(linked)} | {prec:.3f} | "
              + " | ".join(f"{r:.2f}" for r in recalls) + " |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["speed", "dedup"])
    ap.add_argument("--model", default="ViT-B-32")
    ap.add_argument("--checkpoint", help="pretrained tag or file (default: random weights)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=4, help="loader threads")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--naive-n", type=int, default=128)
    ap.add_argument("--n-base", type=int, default=400)
    ap.add_argument("--n-dup", type=int, default=200)
    ap.add_argument("--threshold", type=float, default=0.95)
    args = ap.parse_args()
    bench_speed(args) if args.what == "speed" else bench_dedup(args)


if __name__ == "__main__":
    main()
