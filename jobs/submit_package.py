"""What a submitted job takes to the cluster: this project's code, the files its command line
names, and that command line rewritten to find them there.

The package is a copy of the project root (without virtual environments, outputs, caches)
plus ``_submitted/``, holding the spec, mixture or training YAML the command names. Ray
uploads it as the job's ``working_dir``, so the cluster runs exactly this code. Relative
local paths (the dataset, ``--out``, paths inside an ingest spec or training file) are made
absolute here, as the local commands would resolve them; URIs (``s3://...``) are left alone.
On a real cluster those paths must be shared storage.
"""
from __future__ import annotations

import argparse
import fnmatch
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHIPPED_DIR = "_submitted"
# Never uploaded: environments, VCS data, outputs and caches (Ray also honours .gitignore).
EXCLUDES = (".venv", "venv", ".git", "demo_out", "benchmarks/out", "__pycache__", "*.pyc", ".pytest_cache",
            ".hypothesis", "*.egg-info", "build", ".tessera", "runs", SHIPPED_DIR)
# Subcommands that make no sense inside a cluster job.
NOT_SUBMITTABLE = ("submit", "jobs")


def _local_abs(value: str) -> str:
    # The same rule as jobs/spec.py and jobs/train_config.py: relative local paths resolve
    # against the current directory; anything with a scheme is a URI and stays as it is.
    return value if "://" in value else os.path.abspath(value)


def _ingest_spec(path: str, args: argparse.Namespace) -> tuple[dict, dict]:
    """The spec as the local command would parse it (absolute paths, --dataset applied), so the
    job id on the cluster equals the local one and a re-run resumes either way."""
    from jobs.spec import load_spec

    spec = load_spec(path, dataset_override=args.dataset)
    return spec.to_dict(), {"tessera_dataset": spec.dataset, "tessera_job_id": spec.job_id}


def _train_config(path: str, args: argparse.Namespace) -> tuple[dict, dict]:
    from jobs.train_config import load_train_config

    load_train_config(path)  # validate here: a bad file is the submitter's error, not the cluster's
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    # The keys jobs/train_config.parse_train_config resolves as local paths.
    for key in ("out", "tokenizer"):
        if isinstance(data.get(key), str):
            data[key] = _local_abs(data[key])
    model = data.get("model") or {}
    for key in ("pretrained", "vision", "llm"):
        if isinstance(model.get(key), str):
            model[key] = _local_abs(model[key])
    for stage in data.get("stages") or []:
        for src in stage.get("data") or []:
            if isinstance(src.get("shards"), str):
                src["shards"] = _local_abs(src["shards"])
    return data, {"tessera_out": _local_abs(args.out or data.get("out", ""))}


def _score_spec(path: str, args: argparse.Namespace) -> tuple[dict, dict]:
    from jobs.score_job import parse_score_spec

    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    parse_score_spec(data)
    # Step options are scorer-specific; a relative one naming a file here (a checkpoint) travels as a path.
    for step in data.get("scorers") or []:
        for key, value in step.items():
            if isinstance(value, str) and "://" not in value and os.path.exists(value):
                step[key] = os.path.abspath(value)
    return data, {}


def _as_is(path: str, args: argparse.Namespace) -> tuple[dict, dict]:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f), {}


# (subcommand, argument dest) -> how to read the local file it names, for the copy that travels.
SHIPPED_FILES = {("ingest", "spec"): _ingest_spec, ("train", "config"): _train_config,
                 ("score", "spec"): _score_spec, ("shard", "mixture"): _as_is}
# Arguments holding a local path or URI of data; made absolute when local.
PATH_ARGS = ("dataset", "out", "checkpoint")


@dataclass
class Submission:
    command: str
    argv: list[str]  # the tessera command line as the cluster runs it
    files: dict[str, dict] = field(default_factory=dict)  # name under _submitted/ -> YAML content
    metadata: dict[str, str] = field(default_factory=dict)


def _replace(argv: list[str], old: str, new: str) -> list[str]:
    """Swap a value in argv, whether it stands alone or as ``--flag=value``."""
    out = []
    for token in argv:
        flag, sep, value = token.partition("=")
        if token == old:
            token = new
        elif sep and flag.startswith("--") and value == old:
            token = f"{flag}={new}"
        out.append(token)
    return out


def plan_submission(argv: list[str]) -> Submission:
    """Parse a tessera command line as the cluster will, and plan what travels with it."""
    from jobs.cli import build_parser

    if not argv:
        raise ValueError("give the tessera command to run after --, e.g. tessera submit -- ingest spec.yaml")
    if argv[0] in NOT_SUBMITTABLE:
        raise ValueError(f"`tessera {argv[0]}` cannot be submitted as a job")
    args = build_parser().parse_args(argv)  # a bad command line fails here, with argparse's usage
    sub = Submission(argv[0], list(argv), metadata={"tessera_command": argv[0]})
    for dest in PATH_ARGS:
        value = getattr(args, dest, None)
        if isinstance(value, str) and (dest != "checkpoint" or os.path.exists(value)):
            sub.argv = _replace(sub.argv, value, _local_abs(value))
    if isinstance(getattr(args, "dataset", None), str):
        sub.metadata["tessera_dataset"] = _local_abs(args.dataset)
    if isinstance(getattr(args, "out", None), str):
        sub.metadata["tessera_out"] = _local_abs(args.out)
    for (command, dest), read in SHIPPED_FILES.items():
        path = getattr(args, dest, None) if command == sub.command else None
        if not path:
            continue
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} not found")
        content, meta = read(path, args)
        name = f"{dest}-{Path(path).name}"
        sub.files[name] = content
        sub.metadata.update(meta)
        sub.argv = _replace(sub.argv, path, f"{SHIPPED_DIR}/{name}")
    return sub


def _ignore(root: Path):
    def ignore(folder: str, names: list[str]) -> set[str]:
        rel = Path(folder).relative_to(root)
        return {n for n in names for pattern in EXCLUDES
                if fnmatch.fnmatch(n, pattern) or fnmatch.fnmatch(str(rel / n), pattern)}
    return ignore


def stage_package(sub: Submission, root: Path = PROJECT_ROOT) -> str:
    """A temporary folder holding the project code and the shipped files (the caller removes it)."""
    stage = Path(tempfile.mkdtemp(prefix="tessera-submit-")) / "tessera"
    shutil.copytree(root, stage, ignore=_ignore(root), symlinks=True)
    if sub.files:
        (stage / SHIPPED_DIR).mkdir()
        for name, content in sub.files.items():
            (stage / SHIPPED_DIR / name).write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
    return str(stage)
