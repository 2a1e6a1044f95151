"""The ``tessera`` command line.

    tessera ingest SPEC.yaml [--dataset URI] [--address RAY] [--local]
    tessera query  DATASET "SQL" [--format table|csv|json|parquet] [--out FILE]
    tessera shard  DATASET --out DIR [--where SQL] [--mixture MIX.yaml] [--max-tokens N] [--max-tiles N]
    tessera demo   [--out DIR]

Errors in user input (a bad spec, bad SQL, a missing path) print one clear line and
exit with status 2; they never print a traceback.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys

from schemas.config import ConfigError

USER_ERRORS = (ConfigError, FileNotFoundError, ValueError)


def _ingest(args) -> int:
    from jobs.ingest_job import run_ingest
    from jobs.spec import load_spec

    spec = load_spec(args.spec, dataset_override=args.dataset)
    summary = run_ingest(spec, mode="local" if args.local else "ray", address=args.address,
                         retry_rejects=args.retry_rejects)
    print("\n".join(summary.lines()))
    return 0


def format_table(table, max_width: int = 60) -> str:
    rows = table.to_pylist()
    names = table.column_names

    def cell(v) -> str:
        s = json.dumps(v, default=str) if isinstance(v, (list, dict)) else ("NULL" if v is None else str(v))
        if isinstance(v, float):
            s = f"{v:.6g}"
        return s if len(s) <= max_width else s[: max_width - 1] + "…"

    cells = [[cell(r[n]) for n in names] for r in rows]
    widths = [max([len(n)] + [len(c[i]) for c in cells]) for i, n in enumerate(names)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()
    out = [line(names), line(["-" * w for w in widths])] + [line(c) for c in cells]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)


def _query(args) -> int:
    from pipeline import catalog
    from pipeline.dataset import Dataset

    table = catalog.query(Dataset(args.dataset), args.sql)
    if args.format == "parquet":
        if not args.out:
            raise ValueError("--format parquet needs --out FILE")
        from pipeline import storage

        storage.atomic_write_parquet(args.out, table)
        print(f"wrote {table.num_rows} rows to {args.out}")
        return 0
    if args.format == "table":
        text = format_table(table)
    elif args.format == "json":
        text = "\n".join(json.dumps(r, default=str) for r in table.to_pylist())
    else:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(table.column_names)
        for r in table.to_pylist():
            writer.writerow([json.dumps(v, default=str) if isinstance(v, (list, dict)) else v for v in r.values()])
        text = buf.getvalue().rstrip("\n")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 0


def _shard(args) -> int:
    from jobs.shard_job import ShardOptions, run_shard

    opts = ShardOptions(
        out=args.out, where=args.where, max_tokens=args.max_tokens, max_tiles=args.max_tiles, seed=args.seed,
        packs_per_shard=args.packs_per_shard, mixture=args.mixture, name=args.name,
    )
    summary = run_shard(args.dataset, opts)
    print("\n".join(summary.lines()))
    return 0


def _demo(args) -> int:
    from jobs.demo import run_demo

    return run_demo(args.out, mode="local" if args.local else "ray", address=args.address)


# Commands that live beside their jobs: each module has add_command(subparsers), which adds
# a subparser whose ``func(args) -> int`` runs it.
COMMAND_MODULES: list[str] = ["jobs.score_job", "jobs.report_job", "jobs.train", "jobs.submit", "jobs.jobs_cli"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tessera", description="Curate VLM training data: ingest, query, shard.")
    sub = p.add_subparsers(dest="command", required=True)

    def ray_options(sp):
        sp.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else an embedded local Ray)")
        sp.add_argument("--local", action="store_true", help="run in this process without Ray (debugging)")

    sp = sub.add_parser("ingest", help="run an ingestion job from a YAML spec (resumes if re-run)",
                        description="Ingest sources named in SPEC into a dataset: decode, hash, tile, count tokens, "
                                    "score the rule filters, dedup against the whole dataset. Re-running the same "
                                    "spec resumes: finished partitions are skipped.")
    sp.add_argument("spec", help="job spec YAML (see jobs/examples/)")
    sp.add_argument("--dataset", help="dataset root URI, overriding the spec's 'dataset'")
    sp.add_argument("--retry-rejects", nargs="+", metavar="STAGE/REASON",
                    help="run again only this job's rejected inputs with these reasons (e.g. fetch/timeout, "
                         "read/error, or a bare reason for any stage); accepted samples are kept as they are")
    ray_options(sp)
    sp.set_defaults(func=_ingest)

    sp = sub.add_parser("query", help="run read-only SQL on the catalog (DuckDB)",
                        description="Views: samples (rows + rule scores + dedup), scores (long format), rejects, "
                                    "shards, dedup. Only a single SELECT runs.")
    sp.add_argument("dataset", help="dataset root URI")
    sp.add_argument("sql", help='e.g. "SELECT source, count(*) FROM samples GROUP BY source"')
    sp.add_argument("--format", choices=["table", "csv", "json", "parquet"], default="table")
    sp.add_argument("--out", help="write to this file instead of stdout (required for parquet)")
    sp.set_defaults(func=_query)

    sp = sub.add_parser("shard", help="select, pack and write WebDataset shards",
                        description="Select samples with a SQL predicate (and optionally a mixture file), pack them "
                                    "into sequences within a token and a tile budget, and write WebDataset tars. "
                                    "Reads only the catalog and payload store: no decoding, no re-scoring.")
    sp.add_argument("dataset", help="dataset root URI")
    sp.add_argument("--out", required=True, help="output folder URI for the shard set")
    sp.add_argument("--where", default="true", help='SQL predicate over samples, e.g. "caption_words >= 5 AND NOT is_duplicate"')
    sp.add_argument("--mixture", help="mixture YAML: components with SQL predicates and weights or budgets")
    sp.add_argument("--max-tokens", type=int, default=8192, help="token budget per packed sequence (default 8192)")
    sp.add_argument("--max-tiles", type=int, default=48, help="tile budget per packed sequence (default 48)")
    sp.add_argument("--packs-per-shard", type=int, default=64)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--name", help="shard set name in the catalog (default: the out folder's name)")
    sp.set_defaults(func=_shard)

    sp = sub.add_parser("demo", help="build an offline corpus, ingest it, query it and shard it twice")
    sp.add_argument("--out", default="demo_out", help="working folder (default demo_out)")
    ray_options(sp)
    sp.set_defaults(func=_demo)

    import importlib

    for module in COMMAND_MODULES:
        importlib.import_module(module).add_command(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pipeline.catalog import QueryError
    from schemas import SchemaVersionError

    try:
        return args.func(args)
    except (*USER_ERRORS, QueryError, SchemaVersionError) as exc:
        print(f"tessera {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
