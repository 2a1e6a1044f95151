"""The shard step with bounded memory: pack on a few columns, stream the rest shard by shard.

1. ``plan_shards``: one catalog query returns only what selection and packing need
   (sample_id, source, total_tokens, n_tiles and a flag per mixture component), as
   Arrow/numpy arrays already in the seeded mixture order; the mixture is allocated
   and the offline packer runs on those arrays. A million samples are ~100 bytes each
   here, never a Python object per row.
2. ``write_shards``: every packed sample gets its place (shard, pack, position);
   one DuckDB query joins those places with the sample files and streams the heavy
   columns (conversation, media, token counts) back in that order, in record batches,
   under a memory limit (DuckDB spills its sort to disk beyond it). Each shard is
   written, atomically, as soon as its last pack is complete, so at most one shard's
   packs are held as Python objects.

The output is identical to building all rows in memory first: same selection order,
same packing input, same records.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from pipeline import catalog, storage
from pipeline.dataset import Dataset
from pipeline.mixture import Mixture, allocate_rows
from pipeline.packing import PackingBudget, PackingResult, PackStats, pack_offline, pack_stats
from pipeline.shard_writer import PackMember, pack_record, write_shard
from schemas import SHARD_INDEX_SCHEMA

FETCH_COLUMNS = "sample_id, source, kind, conversation, media, text_tokens, image_tokens, n_tiles"
FETCH_BATCH_ROWS = 4096  # rows turned into Python objects at a time
FETCH_MEMORY_LIMIT = "1GB"  # DuckDB's working memory for the ordered fetch; it spills beyond


@dataclass
class ShardPlan:
    """Selected samples in member order (component by component) and how they pack."""

    sample_id: pa.Array
    source: pa.Array
    component_names: list[str]
    component: np.ndarray  # per member: index into component_names
    tokens: np.ndarray
    tiles: np.ndarray
    result: PackingResult
    stats: PackStats

    @property
    def selected(self) -> int:
        return len(self.tokens)

    def packed(self) -> np.ndarray:
        """Member indices in output order: pack by pack, position by position."""
        if not self.result.packs:
            return np.empty(0, dtype=np.int64)
        return np.concatenate([np.asarray(p, dtype=np.int64) for p in self.result.packs])

    def pack_sizes(self) -> np.ndarray:
        return np.fromiter((len(p) for p in self.result.packs), dtype=np.int64, count=len(self.result.packs))

    def selection_hash(self) -> str:
        """sha256 of the member ids joined by newlines, computed a chunk at a time."""
        h = hashlib.sha256()
        for start in range(0, len(self.sample_id), 65536):
            chunk = "\n".join(self.sample_id.slice(start, 65536).to_pylist())
            h.update((("\n" if start else "") + chunk).encode())
        return h.hexdigest()

    def oversized_ids(self) -> list[str]:
        return self.sample_id.take(pa.array(self.result.oversized, pa.int64())).to_pylist()

    def count_by(self, column: str) -> dict[str, int]:
        """Packed members per component or source, keys in order of first appearance."""
        flat = self.packed()
        if column == "component":
            names, values = self.component_names, self.component[flat]
        else:
            codes = pc.dictionary_encode(self.source.take(pa.array(flat)))
            names, values = codes.dictionary.to_pylist(), codes.indices.to_numpy(zero_copy_only=False)
        uniq, first, counts = np.unique(values, return_index=True, return_counts=True)
        return {names[int(uniq[i])]: int(counts[i]) for i in np.argsort(first)}


def plan_shards(ds: Dataset, where: str, mixture: Mixture, budget: PackingBudget, seed: int) -> ShardPlan:
    flags = ", ".join(f"coalesce(({c.where}), false) AS __c{i}" for i, c in enumerate(mixture.components))
    sql = (f"SELECT sample_id, source, total_tokens, n_tiles, {flags} FROM samples WHERE ({where}) "
           f"ORDER BY sha256('{int(seed)}:' || sample_id), sample_id")
    table = catalog.query(ds, sql)
    if table.num_rows > 1:  # a sample id ingested by two jobs counts once
        ids = table.column("sample_id")
        first = np.r_[True, pc.not_equal(ids.slice(1), ids.slice(0, table.num_rows - 1)).to_numpy(zero_copy_only=False)]
        if not first.all():
            table = table.filter(pa.array(first))
    tokens = table.column("total_tokens").to_numpy().astype(np.int64)
    matches = np.stack([table.column(f"__c{i}").to_numpy(zero_copy_only=False)
                        for i in range(len(mixture.components))]) if table.num_rows else \
        np.zeros((len(mixture.components), 0), dtype=bool)
    chosen = allocate_rows(mixture, matches, tokens)
    names = list(chosen)
    rows = np.concatenate([chosen[n] for n in names]).astype(np.int64) if names else np.empty(0, np.int64)
    component = np.repeat(np.arange(len(names), dtype=np.int32), [len(chosen[n]) for n in names])
    take = pa.array(rows)
    member_tokens = tokens[rows]
    tiles = table.column("n_tiles").to_numpy().astype(np.int64)[rows]
    result = pack_offline(member_tokens, tiles, budget, seed=seed)
    return ShardPlan(
        sample_id=table.column("sample_id").take(take).combine_chunks().cast(pa.string()),
        source=table.column("source").take(take).combine_chunks().cast(pa.string()),
        component_names=names, component=component, tokens=member_tokens, tiles=tiles, result=result,
        stats=pack_stats(result, member_tokens, tiles, budget),
    )


def shard_name(shard_no: int) -> str:
    return f"shard-{shard_no:06d}.tar"


def pack_key(pack_no: int) -> str:
    return f"pack-{pack_no:07d}"


def index_table(plan: ShardPlan, shard_set: str, packs_per_shard: int) -> pa.Table:
    """The shard index (SHARD_INDEX_SCHEMA), built from the plan's arrays alone."""
    flat, sizes = plan.packed(), plan.pack_sizes()
    pack_no = np.repeat(np.arange(len(sizes)), sizes)
    position = np.arange(len(flat)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    n_shards = -(-len(sizes) // packs_per_shard)
    shards = pa.array([shard_name(s) for s in range(n_shards)], pa.string())
    keys = pa.array([pack_key(p) for p in range(len(sizes))], pa.string())
    components = pa.array(plan.component_names, pa.string())
    take = pa.array(flat)
    columns = [
        pa.array([shard_set], pa.string()).take(pa.array(np.zeros(len(flat), np.int64))),
        shards.take(pa.array(pack_no // packs_per_shard)), keys.take(pa.array(pack_no)),
        pa.array(position.astype(np.int32)), plan.sample_id.take(take), plan.source.take(take),
        components.take(pa.array(plan.component[flat])),
        pa.array(plan.tokens[flat].astype(np.int32)), pa.array(plan.tiles[flat].astype(np.int32)),
    ]
    return pa.Table.from_arrays(columns, schema=SHARD_INDEX_SCHEMA)


def _fetch(ds: Dataset, order: pa.Table, workdir: str) -> Iterator[dict]:
    """Rows of ``FETCH_COLUMNS`` for ``order``'s (seq, sample_id), in seq order, one seq once."""
    files = ds.sample_files()
    con = duckdb.connect(os.path.join(workdir, "fetch.duckdb"))
    try:
        if storage.local_path(ds.root) is None:
            con.register_filesystem(storage.filesystem(ds.root)[0])
        con.execute(f"SET memory_limit = '{FETCH_MEMORY_LIMIT}'")
        con.execute("SET temp_directory = ?", [os.path.join(workdir, "spill")])
        con.execute("SET preserve_insertion_order = false")
        con.register("wanted", order)
        quoted = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        reader = con.sql(
            f"SELECT w.seq, {', '.join('s.' + c for c in FETCH_COLUMNS.split(', '))} "
            f"FROM read_parquet([{quoted}], union_by_name = true) s JOIN wanted w USING (sample_id) "
            "ORDER BY w.seq"
        ).to_arrow_reader(FETCH_BATCH_ROWS)
        last = -1
        for batch in reader:
            for row in batch.to_pylist():
                if row["seq"] != last:  # the same id in two jobs' files: the first row wins
                    last = row["seq"]
                    yield row
    finally:
        con.close()


def write_shards(ds: Dataset, plan: ShardPlan, out: str, packs_per_shard: int, budget: dict,
                 fingerprint: str, tiling: dict | None, desc: str = "shard") -> list[str]:
    """Write every pack of ``plan`` into tars of ``packs_per_shard`` packs; return the tar names."""
    flat, sizes = plan.packed(), plan.pack_sizes()
    n_shards = -(-len(sizes) // packs_per_shard)
    names = [shard_name(s) for s in range(n_shards)]
    if not n_shards:
        return names
    order = pa.table({"seq": pa.array(np.arange(len(flat))), "sample_id": plan.sample_id.take(pa.array(flat))})
    workdir = tempfile.mkdtemp(prefix="tessera-shard-")
    rows = _fetch(ds, order, workdir)  # a generator: its DuckDB connection opens on the first row
    bar = tqdm(total=n_shards, desc=desc, unit="shard", dynamic_ncols=True)
    try:
        seq = 0
        for shard_no in range(n_shards):
            packs = []
            for pack_no in range(shard_no * packs_per_shard, min((shard_no + 1) * packs_per_shard, len(sizes))):
                members = []
                for _ in range(int(sizes[pack_no])):
                    row = next(rows, None)
                    if row is None or row["seq"] != seq:
                        raise RuntimeError(f"sample {plan.sample_id[int(flat[seq])]} vanished from the catalog "
                                           "while sharding; re-run the shard job")
                    m = int(flat[seq])
                    members.append(PackMember(row["sample_id"], row["source"], row["kind"],
                                              plan.component_names[plan.component[m]], row["conversation"],
                                              row["media"], row["text_tokens"], row["image_tokens"], row["n_tiles"]))
                    seq += 1
                key = pack_key(pack_no)
                record, images = pack_record(key, members, budget, fingerprint, tiling)
                packs.append((key, record, images))
            write_shard(storage.join(out, names[shard_no]), packs, ds.root)
            bar.update(1)
    finally:
        bar.close()
        rows.close()  # the last shard never asks past its last row: close DuckDB before removing its files
        shutil.rmtree(workdir, ignore_errors=True)
    return names
