"""The ``judge`` scorer for the registry: an LLM judge built from flat user options.

    tessera score DATASET judge -o rubric=caption -o url=http://127.0.0.1:8000 \\
        -o model=Qwen2.5-VL-7B-Instruct -o max_calls=5000 --where "clip_score BETWEEN 0.22 AND 0.28"
    tessera score DATASET judge -o rubric=qa -o backend=local -o model=/models/qwen2.5-0.5b-instruct

Building one is cheap (no connection, no weights): the registry builds scorers on the
driver to learn their name, version and schema. The cache defaults to
``$TESSERA_JUDGE_CACHE`` or ``~/.cache/tessera/judges.sqlite``; on a cluster, point
``cache`` at a path every worker's node shares so the budget and answers are shared.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from filters.scorers.judges.judge import JudgeConfig, LLMJudge
from filters.scorers.judges.rubrics import RUBRICS
from pipeline.catalog import SCORER_NAME
from schemas.config import ConfigError, from_dict


@dataclass
class JudgeOptions:
    model: str  # http: the served model name; local: a transformers model directory
    rubric: str = "caption"  # "caption" (caption/interleaved) or "qa" (instruction/QA)
    backend: str = "http"  # "http" (OpenAI-compatible server) or "local" (transformers)
    url: str | None = None  # http: server root, e.g. http://127.0.0.1:8000
    name: str | None = None  # column prefix; default judge_<rubric>
    cache: str | None = None  # SQLite path; "none" disables caching (and the shared budget)
    concurrency: int = 8
    timeout_s: float = 60.0
    retries: int = 3  # transport retries per request
    attempts: int = 3  # answers asked for before a sample is recorded as unparseable
    max_calls: int | None = None
    retry_failed: bool = False
    send_images: bool = True
    json_mode: bool = False
    device: str = "cpu"


def default_cache() -> str:
    return os.environ.get("TESSERA_JUDGE_CACHE") or os.path.expanduser("~/.cache/tessera/judges.sqlite")


def build_judge_scorer(options: dict[str, Any]) -> LLMJudge:
    opts = from_dict(JudgeOptions, dict(options), "judge")
    if opts.rubric not in RUBRICS:
        raise ConfigError(f"judge.rubric: {opts.rubric!r} is not one of {sorted(RUBRICS)}")
    if opts.name is not None and not (opts.name.startswith("judge") and SCORER_NAME.fullmatch(opts.name)):
        raise ConfigError("judge.name: use a-z, 0-9 and _, starting with 'judge' (e.g. judge_caption_7b)")
    if opts.backend == "http":
        from filters.scorers.judges.http_backend import HTTPBackend, HTTPConfig

        if not opts.url:
            raise ConfigError("judge.url: the http backend needs the server root, e.g. http://127.0.0.1:8000")
        backend = HTTPBackend(HTTPConfig(url=opts.url, model=opts.model, concurrency=opts.concurrency,
                                         timeout_s=opts.timeout_s, retries=opts.retries,
                                         takes_images=opts.send_images, json_mode=opts.json_mode))
    elif opts.backend == "local":
        from filters.scorers.judges.local_backend import LocalBackend, LocalConfig

        try:
            backend = LocalBackend(LocalConfig(path=os.path.abspath(opts.model), device=opts.device))
        except FileNotFoundError as exc:
            raise ConfigError(f"judge.model: {exc}") from exc
    else:
        raise ConfigError(f"judge.backend: {opts.backend!r}; use 'http' or 'local'")
    for key in ("concurrency", "attempts"):
        if getattr(opts, key) < 1:
            raise ConfigError(f"judge.{key} must be >= 1")
    config = JudgeConfig(rubric=opts.rubric, name=opts.name, attempts=opts.attempts, max_calls=opts.max_calls,
                         retry_failed=opts.retry_failed, send_images=opts.send_images)
    cache = None if opts.cache == "none" else os.path.abspath(opts.cache or default_cache())
    return LLMJudge(config, backend, cache)
