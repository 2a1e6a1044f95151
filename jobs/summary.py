"""One summary shape for every job kind (ingest, score, shard), stored as ``manifest["summary"]``.

A job builds a ``JobSummary`` while it runs: each stage is timed with ``stage()``
(stages with a tqdm bar report their own rate and ETA; a stage that has none prints
one timing line when it ends), and the job fills in its counts. ``to_dict()`` is
what the job manifest stores under the stable key ``summary``; ``format_summary``
turns a manifest back into the lines the job prints and ``tessera jobs status``
shows, so the job and the status command never format counts twice.

Shape of ``manifest["summary"]`` (version 1)::

    {"version": 1, "kind": "ingest", "job_id": "...",
     "inputs": 1200, "accepted": 1100, "rejected": 100,
     "rejected_by_reason": {"decode/truncated": 60, "fetch/timeout": 40},   # stage/reason
     "duplicates": 35, "duplicates_by_signal": {"exact_media": 20, "near_text": 15},  # or null
     "stages": [{"name": "list", "seconds": 0.2, "items": 12, "unit": "part", "errors": 0,
                 "skipped": 0}, ...],                                       # in run order
     "worker_seconds": {"read": 1.2, "decode": 3.1},                        # summed over workers
     "details": {...}}                                                      # kind-specific counts
"""
from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

SUMMARY_VERSION = 1


@dataclass
class StageSummary:
    name: str
    seconds: float = 0.0
    items: int | None = None  # units of work the stage handled (partitions, score parts, shards)
    unit: str = ""
    errors: int = 0  # rejects or failed items the stage saw
    error_label: str = "errors"  # what ``errors`` counts, as the summary line says it ("rejected" for ingest)
    skipped: int = 0  # items already done by an earlier run (resume)
    note: str = ""  # what the one-line timing says besides the count
    has_bar: bool = field(default=False, repr=False)  # a tqdm bar showed it: no timing line needed


@dataclass
class JobSummary:
    kind: str
    job_id: str
    inputs: int = 0
    accepted: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    duplicates: int | None = None  # None: the job does not dedup
    duplicates_by_signal: dict[str, int] = field(default_factory=dict)
    stages: list[StageSummary] = field(default_factory=list)
    worker_seconds: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())

    @contextmanager
    def stage(self, name: str, unit: str = "", quiet: bool = False) -> Iterator[StageSummary]:
        """Time one stage; print ``name: N unit (note) in Xs`` when it ends unless a bar showed it."""
        st = StageSummary(name, unit=unit)
        self.stages.append(st)
        start = time.perf_counter()
        try:
            yield st
        finally:
            st.seconds = round(time.perf_counter() - start, 3)
            if not st.has_bar and not quiet:
                print(f"{self.kind} {self.job_id}: {_stage_text(asdict(st))}", file=sys.stderr, flush=True)

    def to_dict(self) -> dict:
        d = asdict(self)
        for st in d["stages"]:
            st.pop("has_bar", None)
        return {"version": SUMMARY_VERSION, **d, "rejected": self.rejected}


def _stage_text(st: dict) -> str:
    parts = []
    if st.get("items") is not None:
        parts.append(f"{st['items']} {st.get('unit') or 'items'}")
    if st.get("skipped"):
        parts.append(f"{st['skipped']} already done")
    if st.get("errors"):
        parts.append(f"{st['errors']} {st.get('error_label') or 'errors'}")
    if st.get("note"):
        parts.append(st["note"])
    inner = f" ({', '.join(parts)})" if parts else ""
    return f"{st['name']}{inner} {st.get('seconds', 0.0):.1f}s"


def _counts(d: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.1f}s" if isinstance(v, float) else f"{k} {v}" for k, v in d.items())


def format_summary(manifest: dict) -> list[str]:
    """Lines describing a job from its manifest (any kind; older manifests without a summary too)."""
    s = manifest.get("summary")
    kind = manifest.get("kind") or (s or {}).get("kind") or "job"
    job_id = manifest.get("job_id") or manifest.get("shard_set") or (s or {}).get("job_id") or "?"
    status = manifest.get("status", "succeeded" if s else "unknown")
    if not isinstance(s, dict) or s.get("version") != SUMMARY_VERSION:
        return [f"{kind} job {job_id} ({status}): no summary recorded"]
    head = (f"{s['kind']} job {s['job_id']} ({status}): {s['inputs']} inputs -> {s['accepted']} accepted, "
            f"{s['rejected']} rejected")
    if s.get("duplicates") is not None:
        head += f", {s['duplicates']} duplicates in the dataset"
    out = [head]
    for reason, n in sorted(s["rejected_by_reason"].items(), key=lambda kv: (-kv[1], kv[0])):
        out.append(f"  rejected {reason}: {n}")
    if s.get("duplicates_by_signal"):
        out.append("  duplicates by signal: " + _counts(s["duplicates_by_signal"]))
    if s["stages"]:
        total = sum(st["seconds"] for st in s["stages"])
        out.append(f"  stages ({total:.1f}s): " + " | ".join(_stage_text(st) for st in s["stages"]))
    if s.get("worker_seconds"):
        out.append("  worker time by step: " + _counts({k: float(v) for k, v in s["worker_seconds"].items()}))
    scalar = {k: v for k, v in s.get("details", {}).items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
    if scalar:
        out.append("  " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in scalar.items()))
    return out
