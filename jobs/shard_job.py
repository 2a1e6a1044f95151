"""``tessera shard``: select with SQL (and a mixture), pack, write WebDataset shards.

Everything comes from the catalog and the payload store: re-sharding with another
filter never re-ingests, decodes or re-scores. The output folder holds the tars, an
``index.parquet`` (sample -> shard, pack) and a ``manifest.json`` (query, mixture,
packing parameters, tokenizer fingerprint, counts, fill ratio); the index is also
registered in the dataset so the ``shards`` view shows it.
"""
from __future__ import annotations

import collections
import datetime as dt
import hashlib
import time
from dataclasses import asdict, dataclass, field

import pyarrow as pa
from tqdm import tqdm

from pipeline import catalog, storage
from pipeline.dataset import Dataset
from pipeline.mixture import Mixture, MixtureComponent, allocate, load_mixture
from pipeline.packing import PackingBudget, pack_offline, pack_stats
from pipeline.shard_writer import PackMember, pack_record, write_shard
from schemas import SHARD_INDEX_SCHEMA

ALL = "all"  # the single component when no mixture is given


@dataclass
class ShardOptions:
    out: str
    where: str = "true"
    max_tokens: int = 8192
    max_tiles: int = 48
    seed: int = 0
    packs_per_shard: int = 64
    mixture: str | None = None  # path of a mixture YAML
    name: str | None = None  # shard set name in the catalog (default: the out folder's name)


@dataclass
class ShardSummary:
    shard_set: str
    selected: int
    packed: int
    oversized: int
    packs: int
    shards: int
    token_fill: float
    tile_fill: float
    by_component: dict[str, int] = field(default_factory=dict)
    by_source: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        return [
            f"shard set {self.shard_set}: {self.packed} samples in {self.packs} packs, {self.shards} shards"
            + (f" ({self.oversized} over budget, left out)" if self.oversized else ""),
            f"  token fill {self.token_fill:.4f}  tile fill {self.tile_fill:.4f}",
            "  by source: " + ", ".join(f"{k} {v}" for k, v in sorted(self.by_source.items())),
            *(["  by component: " + ", ".join(f"{k} {v}" for k, v in self.by_component.items())]
              if list(self.by_component) != [ALL] else []),
        ]


COLUMNS = "sample_id, source, kind, conversation, media, text_tokens, image_tokens, total_tokens, n_tiles"


def _select(ds: Dataset, opts: ShardOptions, mixture: Mixture) -> tuple[dict[str, dict], dict[str, list[str]]]:
    """Rows matching ``opts.where`` and, per component, the sample ids chosen for it."""
    flags = ", ".join(f"coalesce(({c.where}), false) AS __c{i}" for i, c in enumerate(mixture.components))
    sql = f"SELECT {COLUMNS}, {flags} FROM samples WHERE ({opts.where}) ORDER BY sample_id"
    rows = catalog.query(ds, sql).to_pylist()
    by_id = {r["sample_id"]: r for r in rows}
    candidates = {
        c.name: [(r["sample_id"], r["total_tokens"]) for r in rows if r[f"__c{i}"]]
        for i, c in enumerate(mixture.components)
    }
    return by_id, allocate(mixture, candidates, opts.seed)


def run_shard(dataset_uri: str, opts: ShardOptions) -> ShardSummary:
    t0 = time.perf_counter()
    ds = Dataset(dataset_uri)
    record = ds.read_record()
    if not record.get("tokenizer"):
        raise ValueError(f"{dataset_uri} has no ingested job yet: run `tessera ingest` first")
    fingerprint = record["tokenizer"]["fingerprint"]
    tiling = record.get("tiling")
    budget = PackingBudget(opts.max_tokens, opts.max_tiles)
    mixture = load_mixture(opts.mixture) if opts.mixture else Mixture([MixtureComponent(ALL, "true", weight=1.0)])
    rows, chosen = _select(ds, opts, mixture)

    members = [
        PackMember(r["sample_id"], r["source"], r["kind"], comp, r["conversation"], r["media"],
                   r["text_tokens"], r["image_tokens"], r["n_tiles"])
        for comp, ids in chosen.items() for r in (rows[s] for s in ids)
    ]
    tokens = [m.total_tokens for m in members]
    tiles = [m.n_tiles for m in members]
    result = pack_offline(tokens, tiles, budget, seed=opts.seed)
    stats = pack_stats(result, tokens, tiles, budget)

    shard_set = opts.name or opts.out.rstrip("/").rsplit("/", 1)[-1]
    budget_dict = {"max_tokens": opts.max_tokens, "max_tiles": opts.max_tiles}
    index_rows, shard_names = [], []
    groups = [result.packs[i : i + opts.packs_per_shard] for i in range(0, len(result.packs), opts.packs_per_shard)]
    pack_no = 0
    for shard_no, group in enumerate(tqdm(groups, desc=f"shard {shard_set}", unit="shard", disable=not groups)):
        shard_name = f"shard-{shard_no:06d}.tar"
        packs = []
        for pack in group:
            key = f"pack-{pack_no:07d}"
            pack_no += 1
            pack_members = [members[i] for i in pack]
            rec, images = pack_record(key, pack_members, budget_dict, fingerprint, tiling)
            packs.append((key, rec, images))
            index_rows += [
                {"shard_set": shard_set, "shard": shard_name, "pack_key": key, "position": pos,
                 "sample_id": m.sample_id, "source": m.source, "component": m.component,
                 "total_tokens": m.total_tokens, "n_tiles": m.n_tiles}
                for pos, m in enumerate(pack_members)
            ]
        write_shard(storage.join(opts.out, shard_name), packs, ds.root)
        shard_names.append(shard_name)

    index = pa.Table.from_pylist(index_rows, schema=SHARD_INDEX_SCHEMA)
    storage.atomic_write_parquet(storage.join(opts.out, "index.parquet"), index)
    storage.atomic_write_parquet(ds.shard_index(shard_set), index)

    packed = [members[i] for pack in result.packs for i in pack]
    summary = ShardSummary(
        shard_set=shard_set, selected=len(members), packed=len(packed), oversized=len(result.oversized),
        packs=len(result.packs), shards=len(shard_names), token_fill=stats.token_fill, tile_fill=stats.tile_fill,
        by_component=dict(collections.Counter(m.component for m in packed)),
        by_source=dict(collections.Counter(m.source for m in packed)),
        seconds=round(time.perf_counter() - t0, 3),
    )
    manifest = {
        "shard_set": shard_set, "dataset": ds.root, "where": opts.where, "seed": opts.seed,
        "mixture": asdict(mixture) if opts.mixture else None,
        "packing": {**budget_dict, "algorithm": "offline-best-fit-decreasing", "packs_per_shard": opts.packs_per_shard},
        "tokenizer_fingerprint": fingerprint, "tokenizer": record["tokenizer"]["ref"], "tiling": tiling,
        "shards": shard_names,
        "selection_hash": hashlib.sha256("\n".join(m.sample_id for m in members).encode()).hexdigest(),
        "oversized_sample_ids": [members[i].sample_id for i in result.oversized],
        "stats": stats.as_dict(), "summary": asdict(summary),
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(),
    }
    storage.atomic_write_json(storage.join(opts.out, "manifest.json"), manifest)
    return summary
