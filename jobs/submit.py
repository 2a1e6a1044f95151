"""``tessera submit``: run any tessera command as a job on a Ray cluster, through the Jobs API.

    tessera submit --address http://HEAD:8265 -- ingest spec.yaml
    tessera submit --follow -- score /shared/ds clip --checkpoint /shared/vit-b-32.bin
    tessera submit --no-wait -- shard /shared/ds --out /shared/shards-a

The job's runtime environment is this project (``working_dir``) plus the YAML files the
command names (jobs/submit_package.py), so the cluster runs exactly this code with these
specs. The cluster's ``python`` (``--python``) must have Tessera's dependencies installed.
The submission id is printed first; ``tessera jobs status|logs|stop ID`` act on it.
"""
from __future__ import annotations

import asyncio
import shlex
import shutil
import sys
import time
import uuid
from pathlib import Path

from jobs.ray_jobs_client import TERMINAL, JobsApi, api_errors
from jobs.submit_package import plan_submission, stage_package


def submit(address: str | None, argv: list[str], *, python: str = "python",
           submission_id: str | None = None) -> tuple[JobsApi, str]:
    """Upload the package and start the job; returns the connection and the submission id."""
    plan = plan_submission(argv)
    api = JobsApi(address)
    stage = stage_package(plan)
    try:
        job_id = api.call(
            "submit_job",
            entrypoint=shlex.join([python, "-m", "jobs.cli", *plan.argv]),
            submission_id=submission_id or f"tessera-{plan.command}-{uuid.uuid4().hex[:8]}",
            runtime_env={"working_dir": stage, "env_vars": {"PYTHONUNBUFFERED": "1"}},
            metadata=plan.metadata,
        )
    finally:
        shutil.rmtree(Path(stage).parent, ignore_errors=True)  # uploaded by now
    return api, job_id


async def _tail(api: JobsApi, job_id: str) -> None:
    async for chunk in api.client.tail_job_logs(job_id):
        sys.stdout.write(chunk)
        sys.stdout.flush()


def follow_logs(api: JobsApi, job_id: str) -> None:
    """Print the job's logs as they come, until it ends."""
    with api_errors(api.address, api.token_source, job_id):
        asyncio.run(_tail(api, job_id))


def wait(api: JobsApi, job_id: str, poll_s: float = 1.0) -> str:
    """Block until the job reaches a terminal state, printing each state change; returns it."""
    last = None
    while True:
        status = str(api.call("get_job_status", job_id, job_id=job_id).value)
        if status != last:
            print(f"{job_id}: {status}", file=sys.stderr, flush=True)
            last = status
        if status in TERMINAL:
            return status
        time.sleep(poll_s)


def _cli(args) -> int:
    from jobs.jobs_cli import print_status

    argv = args.tessera_args[1:] if args.tessera_args[:1] == ["--"] else args.tessera_args
    api, job_id = submit(args.address, argv, python=args.python, submission_id=args.submission_id)
    print(f"submitted {job_id} to {api.address}", flush=True)
    if args.no_wait:
        return 0
    try:
        if args.follow:
            follow_logs(api, job_id)
        status = wait(api, job_id)
    except KeyboardInterrupt:  # the job is the cluster's now: leaving does not stop it
        print(f"\n{job_id} keeps running: `tessera jobs status|logs|stop {job_id}`", file=sys.stderr)
        return 130
    print_status(api, job_id)
    return 0 if status == "SUCCEEDED" else 1


def add_command(sub) -> None:
    sp = sub.add_parser("submit", help="run a tessera command as a job on a Ray cluster (Jobs API)",
                        description="Submit `tessera COMMAND ...` (ingest, score, shard, report, train, ...) to a "
                                    "Ray cluster through its Jobs API, with this project and the YAML files the "
                                    "command names as the runtime environment. Waits for the job and prints its "
                                    "status and summary (exit 1 if it did not succeed) unless --no-wait.")
    sp.add_argument("--address", help="Ray dashboard URL, e.g. http://HEAD:8265 (default: $RAY_ADDRESS)")
    mode = sp.add_mutually_exclusive_group()
    mode.add_argument("--no-wait", action="store_true", help="print the submission id and return")
    mode.add_argument("--follow", action="store_true", help="stream the job's logs while waiting")
    sp.add_argument("--python", default="python", help="the Python on the cluster that runs the job (default python)")
    sp.add_argument("--submission-id", help="the id to give the job (default: tessera-COMMAND-RANDOM)")
    sp.add_argument("tessera_args", nargs="...", metavar="-- COMMAND ...", help="the tessera command to run")
    sp.set_defaults(func=_cli)
