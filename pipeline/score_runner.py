"""Run any registered scorer over an existing catalog: one score part per samples part.

Work unit = one catalog samples part (``catalog/samples/JOB/PARTITION.parquet``) and
the ids in it that match the user's ``--where``. A worker (a Ray Data actor holding
one model, or this process with ``--local``) reads those rows, decodes their media
from the payload store on loader threads that run ahead of the model (decode and
preprocessing overlap inference), scores them in batches, writes the score part with
``pipeline.scores.write_scores`` and only then the part's completion marker. The
marker records a digest of the selected ids: a re-run skips a part only when the same
scorer config selected the same samples, so a cascade (``--where "clip_score > 0.3"``)
or a new ingest job re-scores exactly what changed.
"""
from __future__ import annotations

import hashlib
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from filters.scorers.base import ScoreInput
from filters.scorers.registry import build_scorer
from pipeline import storage
from pipeline.dataset import Dataset
from pipeline.image_io import ImageDecodeError, decode_image
from pipeline.scores import write_scores
from schemas import MediaRef, Turn

READ_COLUMNS = ["sample_id", "kind", "text", "conversation", "media"]


@dataclass
class ScoreTask:
    part: str  # score part name: JOB__PARTITION of the samples part
    samples_file: str
    sample_ids: list[str]  # selected ids in this part, sorted
    digest: str  # of the ids: the marker is valid only for the same selection


def part_name(samples_file: str) -> str:
    job, partition = samples_file.rsplit("/", 2)[-2:]
    return f"{job}__{partition.removesuffix('.parquet')}"


def selection_digest(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


def _rows(table: pa.Table) -> Iterator[ScoreInput]:
    for r in table.to_pylist():
        yield ScoreInput(
            sample_id=r["sample_id"], kind=r["kind"], text=r["text"] or "",
            conversation=[Turn(**t) for t in r["conversation"] or []],
            media=[MediaRef(**m) for m in r["media"] or []],
        )


class ScoreWorker:
    """Built once per actor (the scorer's model loads once), called once per part."""

    def __init__(self, dataset_root: str, scorer: str, options: dict, job_id: str,
                 batch_size: int = 64, loader_threads: int = 4, prefetch_batches: int = 2):
        self.ds = Dataset(dataset_root)
        self.scorer = build_scorer(scorer, options)
        self.schema = pa.schema([pa.field("sample_id", pa.string(), nullable=False), *self.scorer.schema()])
        self.job_id, self.batch_size = job_id, batch_size
        self.threads, self.prefetch = max(1, loader_threads), max(1, prefetch_batches)

    def _load(self, inp: ScoreInput) -> ScoreInput:
        """Decode (and preprocess) one input's media; an undecodable image is left out."""
        if not self.scorer.needs_images:
            return inp
        limit = getattr(self.scorer, "max_images", None)
        prep = getattr(self.scorer, "preprocess", None)
        for m in inp.media[:limit]:
            try:
                image = decode_image(storage.read_bytes(self.ds.uri(m.uri))).image
            except ImageDecodeError:
                continue  # the scorer reports the sample in its <prefix>_error column
            inp.images.append(prep(image) if prep else image)
        return inp

    def _loaded_batches(self, inputs: list[ScoreInput]) -> Iterator[list[ScoreInput]]:
        """Batches with media loaded, ``prefetch`` batches ahead of the consumer."""
        batches = (inputs[i : i + self.batch_size] for i in range(0, len(inputs), self.batch_size))
        with ThreadPoolExecutor(self.threads) as pool:
            pending = deque([pool.submit(self._load, x) for x in b] for b in islice(batches, self.prefetch))
            while pending:
                futures = pending.popleft()
                nxt = next(batches, None)
                if nxt is not None:
                    pending.append([pool.submit(self._load, x) for x in nxt])
                yield [f.result() for f in futures]

    def __call__(self, task: ScoreTask) -> dict:
        start = time.perf_counter()
        table = storage.read_parquet(task.samples_file, READ_COLUMNS)
        table = table.filter(pc.is_in(table["sample_id"], pa.array(task.sample_ids, pa.string())))
        table = table.sort_by("sample_id")
        rows: list[dict[str, Any]] = []
        for batch in self._loaded_batches(list(_rows(table))):
            scored = self.scorer.score(batch)
            if len(scored) != len(batch):
                raise RuntimeError(f"scorer {self.scorer.name} returned {len(scored)} rows for {len(batch)} inputs")
            rows.extend({"sample_id": inp.sample_id, **row} for inp, row in zip(batch, scored))
        out = pa.Table.from_pylist(rows, schema=self.schema)
        write_scores(self.ds, self.scorer.name, task.part, out)
        # By reason here, where the rows are in hand, so the job's summary need not re-read the part.
        column = f"{self.scorer.name}_error"
        errors = Counter(r[column] for r in rows if r.get(column))
        result = {"part": task.part, "digest": task.digest, "scored": len(rows), "errors": errors.total(),
                  "errors_by_reason": dict(errors), "seconds": round(time.perf_counter() - start, 3)}
        storage.atomic_write_json(self.ds.partition_marker(self.job_id, task.part), result)
        return result


def run_tasks(worker_kwargs: dict, tasks: list[ScoreTask], *, mode: str = "ray", address: str | None = None,
              workers: int = 0, num_gpus: float | None = None, cpus_per_worker: float = 1.0,
              task_timeout_s: float | None = None) -> Iterator[dict]:
    """Yield each task's result in completion order (Ray Data actor pool, or in-process).

    A task whose actor dies or that overruns ``task_timeout_s`` is redone (a task only
    rewrites its own score part and marker); one that fails every attempt fails the job.
    """
    if not tasks:
        return
    from pipeline.executor import ensure_ray, map_partitions

    if mode == "ray" and num_gpus is None:  # one GPU per actor when the cluster has GPUs and the scorer uses them
        import ray

        ensure_ray(address)
        wants = getattr(build_scorer(worker_kwargs["scorer"], worker_kwargs["options"]), "num_gpus", 0.0)
        num_gpus = wants if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    yield from map_partitions(
        ScoreWorker, worker_kwargs, tasks, mode=mode, address=address, workers=workers, desc="score",
        num_cpus=cpus_per_worker, num_gpus=num_gpus or 0.0, partition_timeout_s=task_timeout_s,
        progress=False,  # the score job draws its own bar
    )


def plan_tasks(ds: Dataset, where: str) -> list[ScoreTask]:
    """One task per samples part, with the ids in it that match ``where`` (maybe none)."""
    from pipeline import catalog

    files = ds.sample_files()
    if not files:
        return []
    quoted = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    sql = (f"SELECT f.filename AS file, list(f.sample_id ORDER BY f.sample_id) AS ids "
           f"FROM read_parquet([{quoted}], filename = true) f "
           f"WHERE f.sample_id IN (SELECT sample_id FROM samples WHERE ({where})) GROUP BY f.filename")
    found = {r["file"]: r["ids"] for r in catalog.query(ds, sql).to_pylist()}
    tasks = []
    for f in files:
        ids = found.get(f)
        if ids is None:  # DuckDB may print a path differently from the glob
            ids = next((v for k, v in found.items() if k.endswith(storage.filesystem(f)[1])), [])
        tasks.append(ScoreTask(part_name(f), f, ids, selection_digest(ids)))
    return tasks


def pending(ds: Dataset, job_id: str, tasks: list[ScoreTask]) -> list[ScoreTask]:
    """Tasks without a marker for the same selection (a changed selection is redone)."""
    done = ds.done_partitions(job_id)
    todo = []
    for t in tasks:
        if t.part in done and storage.read_json(ds.partition_marker(job_id, t.part)).get("digest") == t.digest:
            continue
        todo.append(t)
    return todo


def write_ranks(ds: Dataset, scorer_name: str, column: str) -> int:
    """Per-source and global percentile ranks of ``column`` as the ``<scorer>_rank`` table.

    ``<scorer>_rank_in_source`` = fraction of the source's scored samples with a lower
    value, in [0, 1): ``>= 0.7`` keeps the top 30% of every source (ties stay together).
    Window functions cannot go in a ``--where``; this table makes it one comparison.
    """
    from pipeline import catalog

    rank = f"{scorer_name}_rank"
    sql = (f"SELECT sample_id, "
           f"CAST(rank() OVER (PARTITION BY source ORDER BY {column}) - 1 AS DOUBLE) "
           f"/ count(*) OVER (PARTITION BY source) AS {rank}_in_source, "
           f"CAST(rank() OVER (ORDER BY {column}) - 1 AS DOUBLE) / count(*) OVER () AS {rank}_global "
           f"FROM samples WHERE {column} IS NOT NULL ORDER BY sample_id")
    table = catalog.query(ds, sql)
    write_scores(ds, rank, "all", table)
    return table.num_rows
