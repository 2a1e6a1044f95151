"""Packed WebDataset shards -> packed micro-batches, deterministic and resumable.

The stream is a pure function of (seed, position):

1. each shard set is read with ``webdataset`` (tar members grouped into packs), its tar
   order shuffled per epoch and its packs passed through a seeded shuffle buffer;
   epochs repeat forever;
2. the mixture draws the next pack from source i with probability weight_i, with a
   seeded RNG, giving the global pack index g = 0, 1, 2, ...;
3. global step s holds packs [s*B, (s+1)*B) (B = global batch); rank r owns the r-th
   slice of each, and its data-loader worker w the micro-batches j with j % W == w
   (PyTorch hands worker outputs back round-robin, so order is kept for any W).

Only owned packs are decoded. Resuming at step s skips to g = s*B without decoding,
so a resumed run sees exactly the packs the uninterrupted run saw; the image
augmentation RNG is seeded by g, so it sees the same pixels too. Every rank reads
every tar (cheap next to decoding); ``per_rank_shards`` instead hands whole tars to
ranks with ``wds.split_by_node`` for very large sets (order then depends on the world size).
"""
from __future__ import annotations

import glob
import json
import os
import random
from dataclasses import dataclass

import torch
import webdataset as wds

from jobs.train_config import DataSource, Stage
from model.chat_template import encode_conversation
from model.images import jpeg_recompress, tiles_to_tensor
from model.packed import PackedBatch, SubSample, collate_packed
from pipeline.image_io import decode_image
from pipeline.tiling import TilingConfig, tile_image


@dataclass
class ShardSet:
    source: DataSource
    urls: list[str]
    manifest: dict


def open_shard_set(source: DataSource) -> ShardSet:
    path = source.shards
    urls = sorted(glob.glob(os.path.join(path, "*.tar"))) if os.path.isdir(path) else sorted(glob.glob(path))
    if not urls:
        raise FileNotFoundError(f"data source {source.name}: no .tar shards at {path!r}")
    folder = path if os.path.isdir(path) else os.path.dirname(urls[0])
    manifest_path = os.path.join(folder, "manifest.json")
    manifest = json.load(open(manifest_path)) if os.path.exists(manifest_path) else {}
    return ShardSet(source, urls, manifest)


def first_pack(shard_set: ShardSet) -> dict:
    for sample in wds.DataPipeline(wds.SimpleShardList(shard_set.urls[:1]), wds.tarfile_to_samples()):
        return json.loads(sample["json"])
    raise ValueError(f"data source {shard_set.source.name}: {shard_set.urls[0]} holds no pack")


def check_shard_sets(sets: list[ShardSet], tokenizer_fingerprint: str, stage: Stage) -> TilingConfig:
    """The tiling all sets share; refuse another tokenizer, mixed tilings or over-budget packs."""
    tilings = []
    for s in sets:
        record = first_pack(s)
        found = record.get("tokenizer_fingerprint") or s.manifest.get("tokenizer_fingerprint")
        if found != tokenizer_fingerprint:
            raise ValueError(
                f"data source {s.source.name}: shards were packed with tokenizer fingerprint {str(found)[:12]} "
                f"({s.manifest.get('tokenizer', 'unknown tokenizer')}) but training uses {tokenizer_fingerprint[:12]}. "
                "Token counts and packs would be wrong: train with the shards' tokenizer or re-ingest and re-shard."
            )
        budget = record.get("budget") or {}
        for key in ("max_tokens", "max_tiles"):
            limit = getattr(stage, key)
            if limit and budget.get(key, 0) > limit:
                raise ValueError(f"data source {s.source.name}: packed with {key}={budget[key]} but stage "
                                 f"{stage.name} allows {key}={limit}; re-shard with a smaller budget")
        tilings.append(record.get("tiling"))
    if not tilings[0] or any(t != tilings[0] for t in tilings):
        raise ValueError(f"stage {stage.name}: shard sets must record one and the same tiling, got {tilings}")
    return TilingConfig(**tilings[0])


def _source_stream(shard_set: ShardSet, seed: int, index: int, split_shards: bool):
    epoch = 0
    while True:
        urls = list(shard_set.urls)
        random.Random(f"{seed}/shards/{index}/{epoch}").shuffle(urls)
        stages = [wds.SimpleShardList(urls)]
        if split_shards:
            stages += [wds.split_by_node]
        stages += [wds.tarfile_to_samples(),
                   wds.shuffle(shard_set.source.shuffle_buffer, initial=shard_set.source.shuffle_buffer,
                               seed=random.Random(f"{seed}/buffer/{index}/{epoch}").getrandbits(32))]
        yield from wds.DataPipeline(*stages)
        epoch += 1


def mixed_stream(sets: list[ShardSet], seed: int, split_shards: bool = False):
    """(global index, source index, raw webdataset sample), forever."""
    streams = [_source_stream(s, seed, i, split_shards) for i, s in enumerate(sets)]
    weights = [s.source.weight for s in sets]
    rng = random.Random(f"{seed}/mixture")
    g = 0
    while True:
        i = rng.choices(range(len(sets)), weights)[0] if len(sets) > 1 else 0
        yield g, i, next(streams[i])
        g += 1


def decode_pack(raw: dict, tokenizer, tiling: TilingConfig, jpeg_quality, rng: random.Random) -> list[SubSample]:
    record = json.loads(raw["json"])
    subs = []
    for sub in record["samples"]:
        config = tiling.for_n_images(len(sub["images"])) if sub["images"] else tiling
        tiles, counts = [], []
        for entry in sub["images"]:
            image = decode_image(raw[entry["member"]]).image
            if jpeg_quality:
                image = jpeg_recompress(image, tuple(jpeg_quality), rng)
            cut = tile_image(image, config)
            if len(cut) != entry["n_tiles"]:
                raise ValueError(f"pack {record['key']}: image {entry['member']} tiles into {len(cut)} tiles here "
                                 f"but the shard recorded {entry['n_tiles']}: tiling code or config differs")
            tiles += cut
            counts.append(len(cut))
        enc = encode_conversation(tokenizer, sub["conversation"], counts, tiling.tokens_per_tile)
        if len(enc.input_ids) != sub["total_tokens"]:
            raise ValueError(f"pack {record['key']}: sample {sub['sample_id']} encodes to {len(enc.input_ids)} tokens "
                             f"but the catalog counted {sub['total_tokens']}: re-ingest with this version")
        subs.append(SubSample(enc.input_ids, enc.labels_mask, tiles_to_tensor(tiles) if tiles else None, len(counts)))
    return subs


class PackLoader(torch.utils.data.IterableDataset):
    """Yields this rank's micro-batches (``PackedBatch``) from global pack ``start`` on."""

    def __init__(self, sets: list[ShardSet], tokenizer, tiling: TilingConfig, stage: Stage, *, seed: int,
                 rank: int = 0, world: int = 1, start: int = 0, split_shards: bool = False):
        if stage.global_batch_packs % world or (stage.global_batch_packs // world) % stage.micro_batch_packs:
            raise ValueError(f"stage {stage.name}: global_batch_packs ({stage.global_batch_packs}) must split into "
                             f"{world} ranks x whole micro-batches of {stage.micro_batch_packs} packs")
        self.sets, self.tokenizer, self.tiling, self.stage = sets, tokenizer, tiling, stage
        self.seed, self.rank, self.world, self.start, self.split_shards = seed, rank, world, start, split_shards
        self.per_rank = stage.global_batch_packs // world

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid, n_workers = (info.id, info.num_workers) if info else (0, 1)
        batch, micro = self.stage.global_batch_packs, self.stage.micro_batch_packs
        subs, n_packs, budget = [], 0, 0
        for g, i, raw in mixed_stream(self.sets, self.seed, self.split_shards):
            if g < self.start or (g % batch) // self.per_rank != self.rank % self.world:
                continue
            local = (g // batch) * self.per_rank + (g % batch) % self.per_rank
            if (local // micro) % n_workers != wid:
                continue
            source = self.sets[i].source
            subs += decode_pack(raw, self.tokenizer, self.tiling, source.jpeg_quality, random.Random(f"{self.seed}/{g}"))
            n_packs += 1
            budget += json.loads(raw["json"])["budget"]["max_tokens"]
            if n_packs == micro:
                yield collate_packed(subs, self.stage.loss_reduction, n_packs, budget)
                subs, n_packs, budget = [], 0, 0


def _as_is(batch: PackedBatch) -> PackedBatch:
    return batch


def make_loader(dataset: PackLoader, workers: int) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=workers, collate_fn=_as_is)


__all__ = ["PackLoader", "PackedBatch", "ShardSet", "check_shard_sets", "make_loader", "open_shard_set"]
