"""Packed WebDataset shards -> packed micro-batches, deterministic and resumable.

The stream is a pure function of (seed, position):

1. each shard set is read with ``webdataset`` (tar members grouped into packs), its tar
   order shuffled per epoch and its packs passed through a seeded shuffle buffer;
   epochs repeat forever;
2. the mixture draws the next pack from source i with probability weight_i, with a
   seeded RNG, giving the global pack index g = 0, 1, 2, ...;
3. global step s holds packs [s*B, (s+1)*B) (B = global batch); rank r owns the r-th
   slice of each, and its data-loader worker w the micro-batches j with
   j % W == (w + j0) % W, j0 the first micro-batch of this (possibly resumed) run:
   PyTorch hands worker outputs back round-robin starting at worker 0, so the order
   is kept for any W and any resume step.

Only owned packs are decoded. Resuming at step s skips to g = s*B without decoding,
so a resumed run sees exactly the packs the uninterrupted run saw; the image
augmentation RNG is seeded by g, so it sees the same pixels too. Every rank reads
every tar (cheap next to decoding).

``per_rank_shards`` (training file) instead hands whole tars to the world x W
reader slots (rank r, worker role v: slot r*W + v) for very large sets, so each tar
is read once per epoch over the whole job. Each slot mixes its own tars with its own
seeded RNG; the stream then depends on the world size and the worker count, and
every shard set needs at least world x W tars (refused otherwise).
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


def check_tar_split(sets: list[ShardSet], world: int, workers: int) -> None:
    """per_rank_shards: every reader slot (rank x worker) needs at least one tar of every set."""
    slots = world * max(1, workers)
    for s in sets:
        if len(s.urls) < slots:
            raise ValueError(
                f"data source {s.source.name}: per_rank_shards hands whole tars to {world} rank(s) x "
                f"{max(1, workers)} data-loader worker(s) = {slots} readers, but {s.source.shards} holds only "
                f"{len(s.urls)} tar(s). Re-shard with fewer packs per shard (tessera shard --packs-per-shard), "
                "lower workers, or set per_rank_shards: false (every rank reads every tar)."
            )


def _slot_tag(slot: int, n_slots: int) -> str:
    """RNG seed suffix of a reader slot; one slot: none, the same stream as before slots existed."""
    return f"/{slot}of{n_slots}" if n_slots > 1 else ""


def _source_stream(shard_set: ShardSet, seed: int, index: int, slot: int = 0, n_slots: int = 1):
    """Raw packs of one shard set, epoch after epoch; with n_slots > 1 only this slot's tars."""
    tag = _slot_tag(slot, n_slots)
    epoch = 0
    while True:
        urls = list(shard_set.urls)
        random.Random(f"{seed}/shards/{index}/{epoch}").shuffle(urls)  # the same order in every slot
        buffer = shard_set.source.shuffle_buffer
        pipeline = wds.DataPipeline(
            wds.SimpleShardList(urls[slot::n_slots]), wds.tarfile_to_samples(),
            wds.shuffle(buffer, initial=buffer, seed=random.Random(f"{seed}/buffer/{index}/{epoch}{tag}").getrandbits(32)))
        n = 0
        for sample in pipeline:
            n += 1
            sample["__epoch__"] = epoch  # which pass over this set (tests, debugging)
            yield sample
        if n == 0:  # would loop forever without yielding
            raise ValueError(f"data source {shard_set.source.name}: its tars{' for reader slot ' + str(slot) if tag else ''} "
                             "hold no pack")
        epoch += 1


def mixed_stream(sets: list[ShardSet], seed: int, slot: int = 0, n_slots: int = 1):
    """(index in this stream, source index, raw webdataset sample), forever."""
    streams = [_source_stream(s, seed, i, slot, n_slots) for i, s in enumerate(sets)]
    weights = [s.source.weight for s in sets]
    rng = random.Random(f"{seed}/mixture{_slot_tag(slot, n_slots)}")
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
    """Yields this rank's micro-batches (``PackedBatch``) from global pack ``start`` on.

    ``workers`` is the number of data-loader processes ``make_loader`` starts; with
    ``per_rank_shards`` it decides how the tars are split, so it is fixed here.
    """

    def __init__(self, sets: list[ShardSet], tokenizer, tiling: TilingConfig, stage: Stage, *, seed: int,
                 rank: int = 0, world: int = 1, start: int = 0, per_rank_shards: bool = False, workers: int = 0):
        if stage.global_batch_packs % world or (stage.global_batch_packs // world) % stage.micro_batch_packs:
            raise ValueError(f"stage {stage.name}: global_batch_packs ({stage.global_batch_packs}) must split into "
                             f"{world} ranks x whole micro-batches of {stage.micro_batch_packs} packs")
        if start % stage.global_batch_packs:
            raise ValueError(f"start ({start}) must be a whole number of global batches")
        if per_rank_shards:
            check_tar_split(sets, world, workers)
        self.sets, self.tokenizer, self.tiling, self.stage = sets, tokenizer, tiling, stage
        self.seed, self.rank, self.world, self.start = seed, rank, world, start
        self.per_rank_shards, self.workers = per_rank_shards, workers
        self.per_rank = stage.global_batch_packs // world
        self.first_micro = (start // world) // stage.micro_batch_packs  # this rank's micro-batches before start

    def _owned(self, role: int, n_workers: int):
        """(augmentation seed, source index, raw pack) of the packs worker role ``role`` decodes, in order."""
        micro, batch = self.stage.micro_batch_packs, self.stage.global_batch_packs
        if self.per_rank_shards:
            slot, n_slots = self.rank * n_workers + role, self.world * n_workers
            # This slot's k-th micro-batch is the rank's micro-batch role + k * n_workers.
            skip = max(0, -(-(self.first_micro - role) // n_workers)) * micro
            for k, (_, i, raw) in enumerate(mixed_stream(self.sets, self.seed, slot, n_slots)):
                if k >= skip:
                    yield f"{self.seed}/{slot}of{n_slots}/{k}", i, raw
            return
        for g, i, raw in mixed_stream(self.sets, self.seed):
            if g < self.start or (g % batch) // self.per_rank != self.rank % self.world:
                continue
            local = (g // batch) * self.per_rank + (g % batch) % self.per_rank
            if (local // micro) % n_workers == role:
                yield f"{self.seed}/{g}", i, raw

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid, n_workers = (info.id, info.num_workers) if info else (0, 1)
        if self.per_rank_shards and n_workers != max(1, self.workers):
            raise ValueError(f"PackLoader was set up for {self.workers} workers but runs in {n_workers}: "
                             "build the DataLoader with make_loader")
        # The loader's first micro-batch comes from worker 0: it plays the role of the first micro-batch's owner.
        role = (wid + self.first_micro) % n_workers
        micro = self.stage.micro_batch_packs
        subs, keys, budget = [], [], 0
        for aug_seed, i, raw in self._owned(role, n_workers):
            source = self.sets[i].source
            subs += decode_pack(raw, self.tokenizer, self.tiling, source.jpeg_quality, random.Random(aug_seed))
            record = json.loads(raw["json"])
            keys.append((source.name, record["key"]))
            budget += record["budget"]["max_tokens"]
            if len(keys) == micro:
                yield collate_packed(subs, self.stage.loss_reduction, len(keys), budget, keys)
                subs, keys, budget = [], [], 0


def _as_is(batch: PackedBatch) -> PackedBatch:
    return batch


def make_loader(dataset: PackLoader) -> torch.utils.data.DataLoader:
    """``dataset.workers`` processes; each decodes its own micro-batches (returned in stream order)."""
    return torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=dataset.workers, collate_fn=_as_is)


__all__ = ["PackLoader", "PackedBatch", "ShardSet", "check_shard_sets", "check_tar_split", "make_loader", "mixed_stream",
           "open_shard_set"]
