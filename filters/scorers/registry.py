"""Scorer registry: the names ``tessera score DATASET NAME`` and ingest specs accept.

A scorer is registered as ``name -> factory``. A factory takes the user's options
(a dict from CLI flags or a YAML spec), validates them (raise ``ConfigError`` naming
the bad key) and returns a ``Scorer`` (``filters/scorers/base.py``). It must be
cheap: the driver builds one to learn the scorer's name, version and schema before
any work starts, so load the model lazily, on the first ``score`` call. Each worker
builds its own instance from the same options.

To add a scorer (e.g. an LLM judge), add one line to ``SCORERS``::

    "judge": "filters.scorers.judge:build_judge_scorer",

Values are ``"module:function"`` strings so that listing scorers (``tessera score
--help``) imports no model code; a plain callable also works (``register_scorer``),
e.g. in tests, as long as Ray workers can import its module.

Optional scorer attributes the runner (``pipeline/score_runner.py``) uses:

* ``max_images: int | None`` -- decode only the first N media items (CLIP: 1).
* ``preprocess(image) -> Any`` -- runs on the loader threads, overlapping ``score``;
  its outputs replace the PIL images in ``ScoreInput.images``.
* ``rank_column: str | None`` -- after all parts are scored, the runner writes
  ``<name>_rank_in_source`` and ``<name>_rank_global`` (fraction of scored samples
  with a lower value) into the ``<name>_rank`` score table, for top-fraction selection.
* ``num_gpus: float`` -- GPUs per Ray actor when the cluster has GPUs (default 0).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from filters.scorers.base import Scorer
from schemas.config import ConfigError

ScorerFactory = Callable[[dict[str, Any]], Scorer]

SCORERS: dict[str, str | ScorerFactory] = {
    "clip": "filters.scorers.clip:build_clip_scorer",
    "judge": "filters.scorers.judge:build_judge_scorer",
}


def register_scorer(name: str, factory: str | ScorerFactory) -> None:
    SCORERS[name] = factory


def scorer_factory(name: str) -> ScorerFactory:
    if name not in SCORERS:
        raise ConfigError(f"unknown scorer {name!r}; known: {sorted(SCORERS)}")
    factory = SCORERS[name]
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
    return factory


def build_scorer(name: str, options: dict[str, Any] | None = None) -> Scorer:
    """A scorer instance from its registered name and user options (model not loaded yet)."""
    scorer = scorer_factory(name)(dict(options or {}))
    for attr in ("name", "version", "needs_images"):
        if not hasattr(scorer, attr):
            raise TypeError(f"scorer {name!r} lacks the Scorer attribute {attr!r}")
    return scorer
