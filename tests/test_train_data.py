"""The trainer's data path: worker processes, resume, per-rank tar splitting, mixtures, JPEG re-compression."""
from __future__ import annotations

import collections
import itertools
import json
import os

import pytest
import torch
import webdataset as wds

from jobs.train_config import DataSource, Stage, parse_train_config
from jobs.train_data import PackLoader, check_shard_sets, decode_pack, make_loader, mixed_stream, open_shard_set
from jobs.train_loop import run_train
from model.tokenizer import fingerprint, load_tokenizer
from tests.test_train import train_data, two_stage_config  # noqa: F401  (the shared session fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def sources(shards: str, **per_name) -> list:
    """Shard sets over the same folder, one per name, with the given DataSource options."""
    return [open_shard_set(DataSource(name, shards, **opts)) for name, opts in per_name.items()]


def stage(batch: int = 2, micro: int = 1) -> Stage:
    return Stage("s", ["llm"], {"llm": 1e-3}, [DataSource("x", "/unused")], steps=1,
                 global_batch_packs=batch, micro_batch_packs=micro)


@pytest.fixture(scope="module")
def setup(train_data):
    tok = load_tokenizer(train_data["tokenizer"])
    sets = sources(train_data["shards"], captions={}, recompressed={"jpeg_quality": [75, 100]})
    tiling = check_shard_sets(sets, fingerprint(tok), stage())
    return tok, tiling, sets


def batches(setup, n: int, sets=None, **kwargs) -> list:
    tok, tiling, default_sets = setup
    loader = PackLoader(sets or default_sets, tok, tiling, kwargs.pop("stage", None) or stage(), seed=5, **kwargs)
    return list(itertools.islice(make_loader(loader), n))


def assert_same_stream(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.packs == y.packs
        for name in ("input_ids", "targets", "weights", "position_ids", "pixel_values"):
            assert torch.equal(getattr(x, name), getattr(y, name)), name
        assert x.seq_lens == y.seq_lens and x.budget_tokens == y.budget_tokens


def test_two_workers_give_the_same_stream_as_none(setup):
    alone = batches(setup, 8, workers=0)
    assert len({p for b in alone for p in b.packs}) == 8 and {p[0] for b in alone for p in b.packs} == {
        "captions", "recompressed"}  # both sources, JPEG augmentation included
    assert_same_stream(batches(setup, 8, workers=2), alone)


@pytest.mark.parametrize("per_rank_shards", [False, True])
def test_resume_at_step_k_with_workers_gives_the_same_stream(setup, per_rank_shards):
    micro_per_step = 2  # global batch 4 packs, micro-batches of 2 packs: micro-batch 2k opens step k
    s = stage(batch=4, micro=2)
    full = batches(setup, 10, stage=s, workers=2, per_rank_shards=per_rank_shards)
    for k in (1, 3):  # k * micro_per_step micro-batches before: odd and even worker offsets (in packs: 4k)
        resumed = batches(setup, 10 - k * micro_per_step, stage=s, workers=2, start=k * 4,
                          per_rank_shards=per_rank_shards)
        assert_same_stream(resumed, full[k * micro_per_step:])
    # A micro-batch of one pack and an odd step: the first micro-batch belongs to worker 1.
    one = stage(batch=1, micro=1)
    full = batches(setup, 6, stage=one, workers=2, per_rank_shards=per_rank_shards)
    assert_same_stream(batches(setup, 3, stage=one, workers=2, start=3, per_rank_shards=per_rank_shards), full[3:])


@pytest.fixture(scope="module")
def small_tars(train_data):
    """The training dataset re-sharded into tars of 5 packs: enough tars for 2 ranks x 2 workers."""
    from jobs.demo import LENIENT
    from jobs.shard_job import ShardOptions, run_shard
    from jobs.train_demo import MAX_TILES, MAX_TOKENS

    out = os.path.join(os.path.dirname(train_data["shards"]), "shards-train-small-tars")
    if not os.path.exists(os.path.join(out, "manifest.json")):
        run_shard(os.path.join(os.path.dirname(train_data["shards"]), "dataset-train"),
                  ShardOptions(out=out, where=LENIENT, max_tokens=MAX_TOKENS, max_tiles=MAX_TILES, packs_per_shard=5))
    return out


def tar_packs(shards: str) -> dict[str, list[str]]:
    tars = open_shard_set(DataSource("x", shards)).urls
    return {url: [json.loads(s["json"])["key"] for s in wds.WebDataset(url, shardshuffle=False)] for url in tars}


@pytest.mark.parametrize("workers", [1, 2])
def test_per_rank_tar_split_covers_every_pack_once_per_epoch(small_tars, setup, workers):
    tok, tiling, _ = setup
    per_tar = tar_packs(small_tars)
    assert len(per_tar) >= 5  # two ranks x two workers each get a tar, some more than one
    (one,) = sources(small_tars, captions={})
    for epoch in (0, 1):
        seen = []
        for rank, role in itertools.product(range(2), range(workers)):
            loader = PackLoader([one], tok, tiling, stage(batch=2), seed=5, rank=rank, world=2,
                                per_rank_shards=True, workers=workers)
            reader = loader._owned(role, workers)  # this rank x worker's packs, as __iter__ decodes them
            keys = [json.loads(raw["json"])["key"] for _, _, raw in
                    itertools.takewhile(lambda x: x[2]["__epoch__"] <= epoch, reader) if raw["__epoch__"] == epoch]
            urls = {raw["__url__"] for _, _, raw in itertools.islice(loader._owned(role, workers), len(keys))}
            assert keys and len(urls) < len(per_tar)  # whole tars, not every tar
            seen += keys
        everything = [k for keys in per_tar.values() for k in keys]
        assert sorted(seen) == sorted(everything)  # every pack of the set exactly once, over all readers
    # The stream a rank trains on is the one its readers hold: nothing decoded from another rank's tars.
    loader = PackLoader([one], tok, tiling, stage(batch=2), seed=5, rank=1, world=2, per_rank_shards=True)
    got = [p for b in itertools.islice(make_loader(loader), 4) for p in b.packs]
    assert got == [("captions", json.loads(raw["json"])["key"]) for _, _, raw in itertools.islice(loader._owned(0, 1), 4)]


def test_too_few_tars_for_ranks_times_workers_is_refused(train_data, setup, tmp_path):
    tok, tiling, sets = setup
    n = len(sets[0].urls)
    with pytest.raises(ValueError, match=rf"{n + 1} readers, but .* holds only {n} tar"):
        PackLoader(sets, tok, tiling, stage(batch=n + 1), seed=0, world=n + 1, per_rank_shards=True)
    with pytest.raises(ValueError, match="per_rank_shards"):
        PackLoader(sets, tok, tiling, stage(batch=2), seed=0, world=2, per_rank_shards=True, workers=n)
    # The training-file setting reaches the loader, and the run stops before training a step.
    cfg = parse_train_config(two_stage_config(tmp_path / "out", train_data["shards"], per_rank_shards=True,
                                              workers=n + 1))
    assert cfg.per_rank_shards
    with pytest.raises(ValueError, match="per_rank_shards"):
        run_train(cfg)
    assert not (tmp_path / "out" / "train_log.jsonl").exists()


def test_mixture_draws_sources_in_proportion_to_their_weights(train_data):
    sets = sources(train_data["shards"], a={"weight": 2.0}, b={"weight": 1.0}, c={"weight": 1.0})
    n = 2400
    counts = collections.Counter(sets[i].source.name for _, i, _ in itertools.islice(mixed_stream(sets, 3), n))
    # Binomial sd is at most 0.0102 here: 0.04 is ~4 sd.
    for name, share in (("a", 0.5), ("b", 0.25), ("c", 0.25)):
        assert abs(counts[name] / n - share) < 0.04, counts
    # Each source's own stream keeps going through its epochs: every pack of the folder is drawn.
    keys = {json.loads(raw["json"])["key"] for _, i, raw in itertools.islice(mixed_stream(sets, 3), n) if i == 1}
    assert keys == {k for ks in tar_packs(train_data["shards"]).values() for k in ks}


def test_jpeg_recompression_is_per_source_and_reproducible(train_data, setup):
    tok, tiling, sets = setup
    raw_by_key = {json.loads(r["json"])["key"]: r
                  for r in wds.WebDataset(sets[0].urls, shardshuffle=False)}
    first = batches(setup, 12)
    again = batches(setup, 12)
    assert_same_stream(first, again)  # the augmentation RNG is seeded by the pack position
    by_source = collections.Counter()
    for b in first:
        ((name, key),) = b.packs
        clean = decode_pack(raw_by_key[key], tok, tiling, None, None)
        pixels = torch.cat([s.tiles for s in clean if s.tiles is not None])
        assert pixels.shape == b.pixel_values.shape  # same tiles: re-encoding keeps the size
        diff = (pixels - b.pixel_values).abs()
        if name == "captions":
            assert torch.equal(pixels, b.pixel_values)
        else:
            assert diff.max() > 0 and diff.mean() < 0.15  # JPEG artefacts, not another image
        by_source[name] += 1
    assert by_source["captions"] and by_source["recompressed"]
