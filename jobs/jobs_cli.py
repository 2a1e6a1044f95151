"""``tessera jobs list|status|logs|stop``: Ray jobs (submitted with ``tessera submit``) and their
Tessera summaries.

    tessera jobs list   [--address URL]
    tessera jobs status JOB      Ray's status + the job manifest's counts, rejects, duplicates, timings
    tessera jobs logs   JOB [--follow]
    tessera jobs stop   JOB [--no-wait]

A submitted job's metadata names its Tessera command and dataset (and, for an ingest, its
Tessera job id), so status finds ``DATASET/jobs/JOB/manifest.json`` (a shard set's
``OUT/manifest.json``; for a score job, whose ids are only known on the cluster, the
manifests started while the Ray job ran) and prints its summary (``jobs/summary.py``).
"""
from __future__ import annotations

import datetime as dt
import time

from jobs.ray_jobs_client import TERMINAL, JobsApi, JobsApiError

STATUS_WAIT_S = 30.0  # how long `jobs stop` waits to see the job STOPPED


def _when(ms: int | None) -> str:
    return dt.datetime.fromtimestamp(ms / 1000).isoformat(timespec="seconds") if ms else "-"


def _written_during(manifest: dict, info) -> bool:
    stamp = manifest.get("started_at") or manifest.get("created_at")
    if not stamp or not info.start_time:
        return False
    ms = dt.datetime.fromisoformat(stamp).timestamp() * 1000
    return info.start_time <= ms <= (info.end_time or float("inf"))


def tessera_manifests(info) -> list[dict]:
    """The Tessera manifests a Ray job wrote: an ingest's by its job id, a shard set's in its
    --out folder, otherwise (score) the dataset's job manifests started while the Ray job ran."""
    from pipeline import storage
    from pipeline.dataset import Dataset

    meta = info.metadata or {}
    ds = Dataset(meta["tessera_dataset"]) if meta.get("tessera_dataset") else None
    try:
        if ds and meta.get("tessera_job_id"):
            uris, windowed = [ds.job_manifest(meta["tessera_job_id"])], False
        elif meta.get("tessera_command") == "shard" and meta.get("tessera_out"):
            uris, windowed = [storage.join(meta["tessera_out"], "manifest.json")], True
        elif ds:
            uris, windowed = storage.glob(ds.uri("jobs", "*", "manifest.json")), True
        else:
            return []
        found = [storage.read_json(uri) for uri in uris if storage.exists(uri)]
    except OSError as exc:  # the dataset lives where this machine cannot read it
        return [{"job_id": "?", "status": f"manifest not readable here: {exc}"}]
    found = [m for m in found if not windowed or _written_during(m, info)]
    return sorted(found, key=lambda m: m.get("started_at") or m.get("created_at") or "")


def manifest_lines(manifest: dict) -> list[str]:
    """A manifest's summary: the shared job summary when it has one, else its counts and timings."""
    if "summary" in manifest:
        from jobs.summary import format_summary  # the code that wrote the key formats it

        return format_summary(manifest)
    out = [f"{manifest.get('kind', '?')} job {manifest.get('job_id')} ({manifest.get('status')})"]
    counts, timings = manifest.get("counts") or {}, manifest.get("timings") or {}
    scalars = {k: v for k, v in counts.items() if not isinstance(v, dict)}
    if scalars:
        out.append("  " + ", ".join(f"{k} {v}" for k, v in scalars.items()))
    for reason, n in sorted((counts.get("rejects_by_reason") or {}).items(), key=lambda kv: (-kv[1], kv[0])):
        out.append(f"  rejected {reason}: {n}")
    if timings:
        out.append("  time: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    return out


def print_status(api: JobsApi, job_id: str) -> str:
    info = api.info(job_id)
    meta = info.metadata or {}
    status = str(info.status.value)
    what = ", ".join(f"{k.removeprefix('tessera_')} {v}" for k, v in meta.items() if k.startswith("tessera_"))
    print(f"{job_id}: {status}" + (f" ({what})" if what else ""))
    took = f", {(info.end_time - info.start_time) / 1000:.1f}s" if info.end_time and info.start_time else ""
    print(f"  started {_when(info.start_time)}, ended {_when(info.end_time)}{took}")
    print(f"  entrypoint: {info.entrypoint}")
    if info.message:
        print(f"  ray: {info.message.strip().splitlines()[-1]}")
    for manifest in tessera_manifests(info):
        print("\n".join(manifest_lines(manifest)))
    return status


def _status(args) -> int:
    print_status(JobsApi(args.address), args.job)
    return 0


def _logs(args) -> int:
    api = JobsApi(args.address)
    api.info(args.job)  # an unknown id fails here with a clear message
    if args.follow:
        from jobs.submit import follow_logs

        follow_logs(api, args.job)
    else:
        print(api.call("get_job_logs", args.job, job_id=args.job), end="")
    return 0


def _stop(args) -> int:
    api = JobsApi(args.address)
    status = str(api.info(args.job).status.value)
    if status in TERMINAL:
        raise JobsApiError(f"job {args.job} already ended: {status}")
    api.call("stop_job", args.job, job_id=args.job)
    deadline = time.monotonic() + (0 if args.no_wait else STATUS_WAIT_S)
    while True:
        status = str(api.info(args.job).status.value)
        if status in TERMINAL or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    print(f"{args.job}: {status}")
    return 0


def _list(args) -> int:
    import pyarrow as pa

    from jobs.cli import format_table

    rows = []
    for job in sorted(JobsApi(args.address).call("list_jobs"), key=lambda j: j.start_time or 0):
        meta = job.metadata or {}
        rows.append({"job": job.submission_id or job.job_id, "status": str(job.status.value),
                     "command": meta.get("tessera_command", ""), "dataset": meta.get("tessera_dataset", ""),
                     "started": _when(job.start_time)})
    names = ["job", "status", "command", "dataset", "started"]
    print(format_table(pa.Table.from_pylist(rows, schema=pa.schema([(n, pa.string()) for n in names]))))
    return 0


def add_command(sub) -> None:
    sp = sub.add_parser("jobs", help="list Ray jobs, show status and summary, logs, stop",
                        description="Act on jobs submitted to a Ray cluster (see `tessera submit`).")
    verbs = sp.add_subparsers(dest="verb", required=True)

    def verb(name, func, help, job=True):
        p = verbs.add_parser(name, help=help)
        if job:
            p.add_argument("job", help="the submission id `tessera submit` printed")
        p.add_argument("--address", help="Ray dashboard URL, e.g. http://HEAD:8265 (default: $RAY_ADDRESS)")
        p.set_defaults(func=func)
        return p

    verb("list", _list, "the cluster's jobs with their Tessera command and dataset", job=False)
    verb("status", _status, "Ray's status and the Tessera job manifest's summary")
    verb("logs", _logs, "the job's output").add_argument("--follow", action="store_true",
                                                         help="keep printing until the job ends")
    verb("stop", _stop, "stop a running job").add_argument("--no-wait", action="store_true",
                                                           help="return without waiting for STOPPED")
