"""``tessera jobs list|status|logs|stop``: Ray jobs (submitted with ``tessera submit``) and their
Tessera summaries.

    tessera jobs list   [--address URL]
    tessera jobs status JOB      Ray's status + the job manifest's counts, rejects, duplicates, timings
    tessera jobs logs   JOB [--follow]
    tessera jobs stop   JOB [--no-wait]

A submitted job's metadata names its Tessera command and dataset (and, for an ingest, its
Tessera job id), so status finds ``DATASET/jobs/JOB/manifest.json``. For commands whose job
id is only known on the cluster (score), the manifests written while the Ray job ran are shown.
"""
from __future__ import annotations

import datetime as dt
import time

from jobs.ray_jobs_client import JobsApi, JobsApiError

STATUS_WAIT_S = 30.0  # how long `jobs stop` waits to see the job STOPPED


def _when(ms: int | None) -> str:
    return dt.datetime.fromtimestamp(ms / 1000).isoformat(timespec="seconds") if ms else "-"


def tessera_manifests(info) -> list[dict]:
    """The Tessera job manifests a Ray job wrote (empty when none is found or readable)."""
    from pipeline import storage
    from pipeline.dataset import Dataset

    meta = info.metadata or {}
    if not meta.get("tessera_dataset"):
        return []
    ds = Dataset(meta["tessera_dataset"])
    try:
        if meta.get("tessera_job_id"):
            uri = ds.job_manifest(meta["tessera_job_id"])
            return [storage.read_json(uri)] if storage.exists(uri) else []
        start = dt.datetime.fromtimestamp((info.start_time or 0) / 1000, dt.timezone.utc)
        end = dt.datetime.fromtimestamp(info.end_time / 1000, dt.timezone.utc) if info.end_time else None
        found = []
        for uri in storage.glob(ds.uri("jobs", "*", "manifest.json")):
            manifest = storage.read_json(uri)
            started = dt.datetime.fromisoformat(manifest.get("started_at", "1970-01-01T00:00:00+00:00"))
            if started >= start and (end is None or started <= end):
                found.append(manifest)
        return sorted(found, key=lambda m: m.get("started_at", ""))
    except OSError as exc:  # the dataset lives where this machine cannot read it
        return [{"job_id": "?", "status": f"manifest not readable here: {exc}"}]


def manifest_lines(manifest: dict) -> list[str]:
    """A manifest's summary: the ingest job's own summary lines, else its counts and timings."""
    head = f"tessera job {manifest.get('job_id')} ({manifest.get('kind', '?')}): {manifest.get('status')}"
    counts, timings = manifest.get("counts"), manifest.get("timings")
    if manifest.get("kind") == "ingest" and counts:
        from jobs.ingest_job import IngestSummary

        try:
            summary = IngestSummary(manifest["job_id"], **counts, seconds=timings or {})
            return [head] + ["  " + line for line in summary.lines()[1:]]
        except TypeError:  # a manifest from another Tessera version: fall through to the generic form
            pass
    out = [head]
    if counts:
        out.append("  " + "  ".join(f"{k} {v}" for k, v in counts.items() if not isinstance(v, dict)))
        for k, v in counts.items():
            if isinstance(v, dict):
                out.append(f"  {k}: " + ", ".join(f"{r} {n}" for r, n in v.items()))
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
    if status in ("SUCCEEDED", "FAILED", "STOPPED"):
        raise JobsApiError(f"job {args.job} already ended: {status}")
    api.call("stop_job", args.job, job_id=args.job)
    deadline = time.monotonic() + (0 if args.no_wait else STATUS_WAIT_S)
    while True:
        status = str(api.info(args.job).status.value)
        if status in ("SUCCEEDED", "FAILED", "STOPPED") or time.monotonic() >= deadline:
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
