"""Packed vs padded batching on the same data: samples/s and the compute spent on padding.

    .venv/bin/python benchmarks/bench_train_packing.py [--packs 24] [--repeats 3]

Data: the demo corpus ingested with 56 px tiles (16 tokens per tile) and packed into
512-token sequences (``jobs/train_demo.py``). Model: the ``tiny`` preset (InternVL
architecture, ~0.2 M parameters), full forward + backward, float32, CPU. Both modes
train on exactly the same sub-samples, as many per batch:

- packed: one pack per batch, its sub-samples in one row, block-diagonal attention mask;
- padded: the same samples shuffled into batches of the mean pack size, one sample per row,
  right-padded to the longest row of the batch (the usual padded batching);
- padded, fixed length: the padding a fixed 512-token row per sample would cost (counted, not timed).

The padding fraction is padded positions / positions processed by the LLM. Loss values of
the two modes are compared too (token averaging): they must agree.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import webdataset as wds  # noqa: E402


def prepare(workdir: str):
    from jobs.demo import corpus_texts
    from jobs.demo_corpus import build_demo_corpus
    from jobs.train_demo import prepare_train_data
    from model.tokenizer import build_tokenizer

    corpus = build_demo_corpus(os.path.join(workdir, "corpus"))
    tok = os.path.join(workdir, "tokenizer")
    build_tokenizer(tok, texts=corpus_texts(str(corpus.root)), vocab_size=600)
    return tok, prepare_train_data(workdir, corpus, tok)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--packs", type=int, default=24)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: no OpenMP spin on a busy 2-core VM)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from jobs.train_data import decode_pack, open_shard_set
    from jobs.train_config import DataSource
    from jobs.train_demo import MAX_TOKENS, TILING
    from model.build import build_model
    from model.config import ModelConfig
    from model.packed import IGNORE, collate_packed, collate_padded, weighted_loss_sum
    from model.tokenizer import load_tokenizer
    from pipeline.tiling import TilingConfig

    with tempfile.TemporaryDirectory() as workdir:
        tok_dir, shards = prepare(workdir)
        tok = load_tokenizer(tok_dir)
        tiling = TilingConfig(**TILING)
        raws = list(wds.WebDataset(open_shard_set(DataSource("x", shards)).urls, shardshuffle=False).slice(args.packs))
        groups = [decode_pack(r, tok, tiling, None, None) for r in raws]
    model = build_model(ModelConfig(preset="tiny"), tok, tiling).train()
    n_samples = sum(len(g) for g in groups)
    per_batch = round(n_samples / len(groups))
    shuffled = [s for g in groups for s in g]
    random.Random(0).shuffle(shuffled)
    padded_groups = [shuffled[i : i + per_batch] for i in range(0, n_samples, per_batch)]

    def packed_step(subs):
        batch = collate_packed(subs, "token")
        loss = weighted_loss_sum(model, batch)
        (loss / batch.weights.sum()).backward()
        return float(loss.detach()), float(batch.weights.sum()), batch.n_tokens, batch.n_tokens

    def padded_step(subs):
        kwargs, targets, weights = collate_padded(subs, tok.pad_token_id, "token")
        logits = model(**kwargs).logits.float()
        ce = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE, reduction="none")
        loss = (ce * weights.flatten()).sum()
        (loss / weights.sum()).backward()
        real = int(kwargs["attention_mask"].sum())
        return float(loss.detach()), float(weights.sum()), real, kwargs["input_ids"].numel()

    results = {}
    for name, step, batches in (("packed", packed_step, groups), ("padded", padded_step, padded_groups)):
        step(batches[0])  # warm-up
        times, loss_sum, weight_sum, real, total = [], 0.0, 0.0, 0, 0
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for subs in batches:
                ls, ws, r, n = step(subs)
                model.zero_grad(set_to_none=True)
                loss_sum, weight_sum, real, total = loss_sum + ls, weight_sum + ws, real + r, total + n
            times.append(time.perf_counter() - t0)
        t = statistics.median(times)
        results[name] = {"samples_per_s": n_samples / t, "seconds": t, "padding": 1 - real / total,
                         "loss": loss_sum / weight_sum, "tokens": real // args.repeats}
    real_tokens = results["packed"]["tokens"]
    fixed = 1 - real_tokens / (n_samples * MAX_TOKENS)

    print(f"{len(groups)} packs, {n_samples} samples ({per_batch} per padded batch), {real_tokens} real tokens, "
          f"torch threads {args.threads}")
    print("| batching | samples/s | seconds per pass | padding share of LLM positions | loss (token avg) |")
    print("|---|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['samples_per_s']:.1f} | {r['seconds']:.2f} | {r['padding']:.1%} | {r['loss']:.6f} |")
    print(f"| padded to {MAX_TOKENS} per sample (counted) | - | - | {fixed:.1%} | - |")
    speedup = results["packed"]["samples_per_s"] / results["padded"]["samples_per_s"]
    print(f"packed / padded samples/s: {speedup:.2f}x")


if __name__ == "__main__":
    main()
