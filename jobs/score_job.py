"""``tessera score``: run model-based scorers on an existing dataset, resumable per part.

    tessera score DATASET clip --checkpoint laion2b_s34b_b79k [--model ViT-B-32] [--where SQL]
    tessera score DATASET --spec score.yaml

A spec (YAML) lists steps; later steps may select on earlier steps' columns (a cascade)::

    batch_size: 64
    scorers:
      - {scorer: clip, model: ViT-B-32, checkpoint: /weights/vit-b-32.pt, where: "passes_rules"}
      - {scorer: judge, where: "clip_rank_in_source >= 0.7"}   # any other registered scorer
    dedup: {duplicate_signals: [exact_media, exact_text, near_text, near_image, near_embedding]}

Every key of a step other than ``scorer`` and ``where`` is an option of that scorer.
The same step list is what an ingestion spec's ``scorers:`` would hold (``run_steps``).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import yaml

from filters.dedup import DedupConfig
from filters.scorers.registry import SCORERS, build_scorer
from jobs.summary import JobSummary
from pipeline import storage
from pipeline.dataset import Dataset
from pipeline.score_runner import ScoreTask, pending, plan_tasks, run_tasks, write_ranks
from schemas.config import ConfigError, from_dict


@dataclass
class ScoreStep:
    scorer: str
    options: dict[str, Any] = field(default_factory=dict)
    where: str = "true"


@dataclass
class ScoreSpec:
    steps: list[ScoreStep]
    batch_size: int = 64  # samples per scorer call (and per prefetched batch)
    workers: int = 0  # actors; 0 = one per GPU (GPU scorers on a GPU cluster) or per CPU
    num_gpus: float | None = None  # per actor; None = the scorer's own wish when GPUs exist
    loader_threads: int = 4  # decode/preprocess threads per actor, running ahead of the model
    dedup: DedupConfig | None = None  # re-run dataset dedup afterwards (e.g. with near_embedding)


def parse_steps(raw: Any, where: str = "scorers") -> list[ScoreStep]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}: give a non-empty list of scorer steps")
    steps = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or ("scorer" in item) == ("name" in item):
            raise ConfigError(f"{where}[{i}]: each step needs 'scorer' (or 'name': one of {sorted(SCORERS)})")
        item = dict(item)
        name = item.pop("scorer") if "scorer" in item else item.pop("name")  # ingest specs may say name:
        step = ScoreStep(str(name), {}, str(item.pop("where", "true")))
        step.options = item
        try:
            build_scorer(step.scorer, step.options)  # validate options now, not in a worker
        except ConfigError as exc:
            raise ConfigError(f"{where}[{i}]: {exc}") from exc
        steps.append(step)
    return steps


def parse_score_spec(data: Any) -> ScoreSpec:
    if not isinstance(data, dict):
        raise ConfigError("a score spec is a mapping with a 'scorers' list")
    data = dict(data)
    steps = parse_steps(data.pop("scorers", None))
    spec = from_dict(ScoreSpec, {**data, "steps": []}, "score spec")
    spec.steps = steps
    if spec.batch_size < 1:
        raise ConfigError("score spec.batch_size must be >= 1")
    return spec


def job_id_of(scorer, step: ScoreStep) -> str:
    """Same scorer, version, options and selection: same job, so a re-run resumes."""
    key = json.dumps([step.scorer, scorer.version, step.options, step.where], sort_keys=True, default=str)
    return f"score-{scorer.name}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def run_step(ds: Dataset, step: ScoreStep, spec: ScoreSpec, *, mode: str = "ray",
             address: str | None = None, only_job: str | None = None) -> dict:
    """Score one step's selection; ``only_job``: just that ingest job's samples parts (an ingest stage)."""
    t0 = time.perf_counter()
    scorer = build_scorer(step.scorer, step.options)
    job_id = job_id_of(scorer, step)
    summary = JobSummary("score", job_id)
    manifest = {"job_id": job_id, "kind": "score", "scorer": step.scorer, "options": step.options,
                "where": step.where, "version": scorer.version, "status": "running", "only_job": only_job,
                "started_at": dt.datetime.now(dt.timezone.utc).isoformat()}
    storage.atomic_write_json(ds.job_manifest(job_id), manifest)
    with summary.stage("plan", unit="part") as st:
        tasks: list[ScoreTask] = plan_tasks(ds, step.where)
        if only_job is not None:  # the same job id as `tessera score`: its markers are shared
            tasks = [t for t in tasks if t.part.startswith(f"{only_job}__")]
        todo = pending(ds, job_id, tasks)
        selected = sum(len(t.sample_ids) for t in tasks)
        st.items, st.skipped = len(tasks), len(tasks) - len(todo)
        st.note = f"{selected} samples selected"
    kwargs = {"dataset_root": ds.root, "scorer": step.scorer, "options": step.options, "job_id": job_id,
              "batch_size": spec.batch_size, "loader_threads": spec.loader_threads}
    from tqdm import tqdm

    with summary.stage(f"score:{scorer.name}", unit="part") as st, \
            tqdm(total=len(todo), desc=f"score {scorer.name}", unit="part", disable=not todo) as bar:
        st.has_bar, st.items = bool(todo), len(todo)
        for result in run_tasks(kwargs, todo, mode=mode, address=address, workers=spec.workers,
                                num_gpus=spec.num_gpus):
            st.errors += result["errors"]
            bar.set_postfix(errors=st.errors, refresh=False)
            bar.update(1)
    markers = [storage.read_json(ds.partition_marker(job_id, t.part)) for t in tasks]
    with summary.stage("rank") as st:
        ranked = write_ranks(ds, scorer.name, scorer.rank_column) if getattr(scorer, "rank_column", None) else 0
        st.items, st.unit = ranked, "samples"
    counts = {"job_id": job_id, "scorer": scorer.name, "parts": len(tasks), "parts_skipped": len(tasks) - len(todo),
              "scored": sum(m["scored"] for m in markers), "errors": sum(m["errors"] for m in markers),
              "ranked": ranked, "seconds": round(time.perf_counter() - t0, 2)}
    errors = _error_reasons(ds, scorer.name, markers)
    summary.inputs = selected
    summary.accepted = selected - sum(errors.values())
    summary.rejected_by_reason = {f"{scorer.name}/{k}": v for k, v in errors.items()}
    summary.details = {k: counts[k] for k in ("scorer", "parts", "parts_skipped", "scored", "ranked")}
    manifest.update(status="succeeded", finished_at=dt.datetime.now(dt.timezone.utc).isoformat(), counts=counts,
                    summary=summary.to_dict())
    storage.atomic_write_json(ds.job_manifest(job_id), manifest)
    return {**counts, "summary": manifest["summary"]}


def _error_reasons(ds: Dataset, scorer: str, markers: list[dict]) -> dict[str, int]:
    """Selected samples without a score, by the scorer's ``<name>_error`` value, from the parts' markers."""
    counts: Counter[str] = Counter()
    for m in markers:
        by_reason = m.get("errors_by_reason")
        if by_reason is None and m["errors"]:  # a marker written before markers kept reasons
            by_reason = _part_error_reasons(ds, scorer, m["part"])
        counts.update(by_reason or {})
    return dict(counts)


def _part_error_reasons(ds: Dataset, scorer: str, part: str) -> Counter[str]:
    column = f"{scorer}_error"
    values = storage.read_parquet(ds.score_part(scorer, part), [column]).column(column).to_pylist()
    return Counter(v for v in values if v)


def run_steps(ds: Dataset, steps: list[ScoreStep], spec: ScoreSpec | None = None, **kw) -> list[dict]:
    """Run scorer steps in order (an ingest job can call this after its partitions)."""
    spec = spec or ScoreSpec(steps=steps)
    return [run_step(ds, step, spec, **kw) for step in steps]


def run_score(dataset: str, spec: ScoreSpec, *, mode: str = "ray", address: str | None = None) -> list[dict]:
    ds = Dataset(dataset)
    if not ds.sample_files():
        raise FileNotFoundError(f"{dataset} has no catalog samples: ingest something first")
    out = run_steps(ds, spec.steps, spec, mode=mode, address=address)
    if spec.dedup is not None:
        from pipeline.dedup_catalog import dedup_dataset

        counts = dedup_dataset(ds, spec.dedup)
        out.append({"dedup": counts})
    return out


def _latest_ingest_dedup(ds: Dataset) -> DedupConfig:
    for job in reversed(list(ds.job_order())):
        uri = ds.job_manifest(job)
        if storage.exists(uri):
            return from_dict(DedupConfig, storage.read_json(uri)["spec"].get("dedup"), "dedup")
    return DedupConfig()


def _cli(args) -> int:
    if args.spec:
        with open(args.spec, encoding="utf-8") as f:
            spec = parse_score_spec(yaml.safe_load(f))
    else:
        if not args.scorers:
            raise ConfigError("name at least one scorer (e.g. clip) or give --spec")
        options: dict[str, Any] = {}
        for kv in args.option or []:
            key, sep, value = kv.partition("=")
            if not sep:
                raise ConfigError(f"--option {kv!r}: write KEY=VALUE")
            options[key] = yaml.safe_load(value)
        for key in ("model", "checkpoint"):
            if getattr(args, key) is not None:
                options[key] = getattr(args, key)
        spec = ScoreSpec(steps=parse_steps([{"scorer": s, "where": args.where, **options} for s in args.scorers]),
                         batch_size=args.batch_size, workers=args.workers, num_gpus=args.num_gpus)
    if args.dedup:
        spec.dedup = spec.dedup or _latest_ingest_dedup(Dataset(args.dataset))
    for s in run_score(args.dataset, spec, mode="local" if args.local else "ray", address=args.address):
        if "dedup" in s:
            print(f"dedup: {s['dedup']['samples']} samples, {s['dedup']['duplicates']} marked duplicate")
            continue
        print(f"{s['scorer']} ({s['job_id']}): {s['parts']} parts ({s['parts_skipped']} already done), "
              f"{s['scored']} scored, {s['errors']} without a score, {s['seconds']:.1f}s")
    return 0


def add_command(sub) -> None:
    sp = sub.add_parser("score", help="run model-based scorers (CLIP, ...) on an existing dataset",
                        description="Score catalog samples with registered scorers "
                                    f"({', '.join(sorted(SCORERS))}); results join the samples view, so "
                                    "`tessera shard --where` can select on them. Resumes per part.")
    sp.add_argument("dataset", help="dataset root URI")
    sp.add_argument("scorers", nargs="*", help="registered scorer names (or use --spec)")
    sp.add_argument("--spec", help="score spec YAML: scorer steps with options and per-step --where")
    sp.add_argument("--where", default="true", help="score only samples matching this SQL predicate")
    sp.add_argument("--model", help="model name (clip: any open_clip name, or local-dir:PATH)")
    sp.add_argument("--checkpoint", help="pretrained tag or local checkpoint file")
    sp.add_argument("-o", "--option", action="append", help="scorer option KEY=VALUE (YAML value), repeatable")
    sp.add_argument("--batch-size", type=int, default=64, help="samples per scorer call (scores do not depend on it)")
    sp.add_argument("--workers", type=int, default=0, help="actors (default: one per GPU, else per CPU)")
    sp.add_argument("--num-gpus", type=float, default=None, help="GPUs per actor (default: 1 when the cluster has GPUs)")
    sp.add_argument("--dedup", action="store_true", help="re-run dataset dedup afterwards (latest ingest's config)")
    sp.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else an embedded local Ray)")
    sp.add_argument("--local", action="store_true", help="run in this process without Ray (debugging)")
    sp.set_defaults(func=_cli)
