"""The demo's training run: a small-tile ingest of the demo corpus, shards, three tiny stages.

The demo's main dataset is tiled for real models (448 px tiles, 256 tokens each),
far too long for a CPU. This ingests the same corpus into a second dataset with
56 px tiles of 7 px patches (16 tokens per tile), shards it into 512-token packs and
trains the ``tiny`` preset through the InternVL 2.5 stages (projector warm-up, then
ViT + projector, then the full model), printing the loss as it goes down.
"""
from __future__ import annotations

import os

from jobs.demo import LENIENT, demo_spec
from jobs.ingest_job import run_ingest
from jobs.shard_job import ShardOptions, run_shard
from jobs.spec import parse_spec
from jobs.train_config import parse_train_config
from jobs.train_loop import run_train

TILING = {"tile_size": 56, "patch_size": 7, "max_tiles": 4}
MAX_TOKENS, MAX_TILES = 512, 16


def prepare_train_data(out: str, corpus, tokenizer_dir: str, mode: str = "local") -> str:
    """Ingest ``corpus`` with the small tiling into OUT/dataset-train and shard it; return the shard folder.

    Idempotent: an existing shard folder is reused (tests share one across modules).
    """
    shards = os.path.join(out, "shards-train")
    if os.path.exists(os.path.join(shards, "manifest.json")):
        return shards
    spec = demo_spec(out, corpus)
    spec.update(name="demo-train", dataset=os.path.join(out, "dataset-train"), tokenizer=tokenizer_dir,
                tiling=dict(TILING))
    parsed = parse_spec(spec)
    run_ingest(parsed, mode=mode)
    run_shard(parsed.dataset, ShardOptions(out=shards, where=LENIENT, max_tokens=MAX_TOKENS, max_tiles=MAX_TILES,
                                           packs_per_shard=16))
    return shards


def demo_train_config(out: str, shards: str, steps: tuple[int, int, int] = (8, 8, 16), **top) -> dict:
    data = [{"name": "demo", "shards": shards, "jpeg_quality": [75, 100]}]
    common = {"global_batch_packs": 2, "micro_batch_packs": 1, "max_tokens": MAX_TOKENS, "max_tiles": MAX_TILES,
              "loss_reduction": "square", "data": data}
    return {
        "out": out, "model": {"preset": "tiny"}, "save_every": 4, **top,
        "stages": [
            {"name": "projector-warmup", "train": ["projector"], "lr": {"projector": 2e-3},
             "steps": steps[0], "warmup_steps": 2, **common},
            {"name": "vit-projector", "train": ["vision", "projector"], "lr": {"vision": 1e-3, "projector": 1e-3},
             "steps": steps[1], "warmup_steps": 2, **common},
            {"name": "full", "train": ["vision", "projector", "llm"],
             "lr": {"vision": 1e-3, "projector": 2e-3, "llm": 3e-3}, "steps": steps[2], "warmup_steps": 2, **common},
        ],
    }


def run_train_demo(out: str, corpus, tokenizer_dir: str) -> int:
    out = os.path.abspath(out)
    print("\n== tessera train: a small-tile ingest and three tiny InternVL stages on CPU")
    shards = prepare_train_data(out, corpus, tokenizer_dir)
    cfg = parse_train_config(demo_train_config(os.path.join(out, "train"), shards))
    results = run_train(cfg)
    for r in results:
        print(f"  stage {r.name}: {r.steps} steps, loss {r.losses[0]:.3f} -> {r.losses[-1]:.3f}")
    if results:
        print(f"  loss {results[0].losses[0]:.3f} -> {results[-1].losses[-1]:.3f}; "
              f"checkpoint (loads with InternVLForConditionalGeneration.from_pretrained): {results[-1].final}")
    else:
        print(f"  already trained: {cfg.out}")
    return 0
