"""``tessera shard``: select with SQL (and a mixture), pack, write WebDataset shards.

Everything comes from the catalog and the payload store: re-sharding with another
filter never re-ingests, decodes or re-scores. The output folder holds the tars, an
``index.parquet`` (sample -> shard, pack) and a ``manifest.json`` (query, mixture,
packing parameters, tokenizer fingerprint, counts, fill ratio); the index is also
registered in the dataset so the ``shards`` view shows it.
"""
from __future__ import annotations

import datetime as dt
import time
from dataclasses import asdict, dataclass, field

from jobs.summary import JobSummary, StageSummary
from pipeline import storage
from pipeline.dataset import Dataset
from pipeline.mixture import Mixture, MixtureComponent, load_mixture
from pipeline.packing import PackingBudget
from pipeline.shard_stream import index_table, plan_shards, write_shards

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


def _job_summary(summary: ShardSummary, seconds: dict[str, float]) -> dict:
    """The shared job summary (``jobs/summary.py``) that ``manifest["summary"]`` holds."""
    items = {"plan": (summary.packs, "packs"), "write": (summary.shards, "shards")}
    return JobSummary(
        "shard", summary.shard_set, inputs=summary.selected, accepted=summary.packed,
        rejected_by_reason={"pack/over_budget": summary.oversized} if summary.oversized else {},
        stages=[StageSummary(k, round(v, 3), *items[k]) for k, v in seconds.items()], details=asdict(summary),
    ).to_dict()


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
    # Only the columns packing needs are held for all samples; conversations and media
    # stream from the catalog shard by shard (pipeline/shard_stream.py).
    plan = plan_shards(ds, opts.where, mixture, budget, opts.seed)
    stats = plan.stats
    t_plan = time.perf_counter()

    shard_set = opts.name or opts.out.rstrip("/").rsplit("/", 1)[-1]
    budget_dict = {"max_tokens": opts.max_tokens, "max_tiles": opts.max_tiles}
    shard_names = write_shards(ds, plan, opts.out, opts.packs_per_shard, budget_dict, fingerprint, tiling,
                               desc=f"shard {shard_set}")

    index = index_table(plan, shard_set, opts.packs_per_shard)
    storage.atomic_write_parquet(storage.join(opts.out, "index.parquet"), index)
    storage.atomic_write_parquet(ds.shard_index(shard_set), index)

    result = plan.result
    summary = ShardSummary(
        shard_set=shard_set, selected=plan.selected, packed=index.num_rows, oversized=len(result.oversized),
        packs=len(result.packs), shards=len(shard_names), token_fill=stats.token_fill, tile_fill=stats.tile_fill,
        by_component=plan.count_by("component"), by_source=plan.count_by("source"),
        seconds=round(time.perf_counter() - t0, 3),
    )
    manifest = {
        "shard_set": shard_set, "dataset": ds.root, "where": opts.where, "seed": opts.seed,
        "mixture": asdict(mixture) if opts.mixture else None,
        "packing": {**budget_dict, "algorithm": "offline-best-fit-decreasing", "packs_per_shard": opts.packs_per_shard},
        "tokenizer_fingerprint": fingerprint, "tokenizer": record["tokenizer"]["ref"], "tiling": tiling,
        "shards": shard_names,
        "selection_hash": plan.selection_hash(), "oversized_sample_ids": plan.oversized_ids(),
        "stats": stats.as_dict(), "kind": "shard",
        "summary": _job_summary(summary, {"plan": t_plan - t0, "write": time.perf_counter() - t_plan}),
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(),
    }
    storage.atomic_write_json(storage.join(opts.out, "manifest.json"), manifest)
    return summary
