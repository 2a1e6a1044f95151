"""Mixtures: how many samples each slice of the catalog contributes to a shard set.

A mixture file (YAML) lists components, each a SQL predicate over ``samples`` with
either a weight or a budget::

    components:
      - {name: photos, where: "source = 'photos'", weight: 2}
      - {name: web,    where: "source = 'web'",    weight: 1}
      - {name: ocr,    where: "kind = 'ocr'",      max_samples: 5000}
    total_samples: 20000        # optional: the size of the weighted part

Budgeted components take up to their budget. Weighted components share what is left
in proportion to their weights; without ``total_samples`` the largest total that no
weighted component has to repeat samples for is taken. A sample matching several
components belongs to the first. Which samples are taken is a seeded hash order, so
the same seed gives the same selection.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import yaml

from schemas.config import ConfigError, from_dict


@dataclass
class MixtureComponent:
    name: str
    where: str
    weight: float | None = None
    max_samples: int | None = None
    max_tokens: int | None = None

    def __post_init__(self):
        budgets = [self.weight is not None, self.max_samples is not None or self.max_tokens is not None]
        if sum(budgets) != 1:
            raise ValueError(f"component {self.name!r}: give either weight or max_samples/max_tokens")
        if self.weight is not None and self.weight <= 0:
            raise ValueError(f"component {self.name!r}: weight must be > 0")

    @property
    def weighted(self) -> bool:
        return self.weight is not None


@dataclass
class Mixture:
    components: list[MixtureComponent] = field(default_factory=list)
    total_samples: int | None = None

    def __post_init__(self):
        if not self.components:
            raise ValueError("a mixture needs at least one component")
        names = [c.name for c in self.components]
        if len(set(names)) != len(names):
            raise ValueError(f"component names must be unique: {names}")


def load_mixture(path: str) -> Mixture:
    with open(path, encoding="utf-8") as f:
        return from_dict(Mixture, yaml.safe_load(f), "mixture")


def seeded_order(sample_ids: list[str], seed: int) -> list[str]:
    """Ids in the seeded hash order every selection uses (ties: input order).

    The shard job gets the same order from SQL: ``ORDER BY sha256('SEED:' || sample_id)``
    (lowercase hex sorts like the digest bytes).
    """
    return sorted(sample_ids, key=lambda s: hashlib.sha256(f"{seed}:{s}".encode()).digest())


def allocate_rows(mixture: Mixture, matches: np.ndarray, tokens: np.ndarray) -> dict[str, np.ndarray]:
    """Row indices chosen per component, for rows already in seeded order.

    ``matches`` is a (components, rows) bool array (row r matches component c's
    predicate), ``tokens`` the rows' token counts. Arrays in, arrays out: a million
    candidates cost a few numpy passes, not a Python object each. Budgeted components
    come first in the result, then weighted ones, each in mixture order.
    """
    matches = np.asarray(matches, dtype=bool).reshape(len(mixture.components), -1)
    tokens = np.asarray(tokens, dtype=np.int64)
    taken = np.zeros(matches.shape[1], dtype=bool)
    pools: dict[str, np.ndarray] = {}
    for c, comp in enumerate(mixture.components):  # first matching component wins
        pool = np.flatnonzero(matches[c] & ~taken)
        taken[pool] = True
        pools[comp.name] = pool

    chosen: dict[str, np.ndarray] = {}
    for comp in mixture.components:
        if not comp.weighted:
            chosen[comp.name] = _within_budget(pools[comp.name], tokens, comp)

    weighted = [c for c in mixture.components if c.weighted]
    if weighted:
        total_weight = sum(c.weight for c in weighted)
        if mixture.total_samples is not None:
            total = mixture.total_samples - sum(len(v) for v in chosen.values())
            if total < 0:
                raise ConfigError("mixture.total_samples is smaller than the budgeted components take")
        else:
            total = min(len(pools[c.name]) * total_weight / c.weight for c in weighted)
        for c in weighted:
            want = int(round(total * c.weight / total_weight))
            chosen[c.name] = pools[c.name][:want]
    return chosen


def _within_budget(pool: np.ndarray, tokens: np.ndarray, comp: MixtureComponent) -> np.ndarray:
    """Pool rows in order, up to max_samples; a row that would pass max_tokens is skipped."""
    limit = comp.max_samples if comp.max_samples is not None else len(pool)
    if comp.max_tokens is None:
        return pool[:limit]
    head = pool[:limit]
    if int(tokens[head].sum()) <= comp.max_tokens:  # the common case: no row is skipped
        return head
    picked, used = [], 0
    for row, tok in zip(pool.tolist(), tokens[pool].tolist()):
        if len(picked) >= limit:
            break
        if used + tok > comp.max_tokens:
            continue
        picked.append(row)
        used += tok
    return np.asarray(picked, dtype=np.int64)


def allocate(
    mixture: Mixture, candidates: dict[str, list[tuple[str, int]]], seed: int
) -> dict[str, list[str]]:
    """Pick sample ids per component from ``candidates`` (name -> [(sample_id, tokens)])."""
    tokens: dict[str, int] = {}
    for comp in mixture.components:
        tokens.update(candidates.get(comp.name, []))
    ids = seeded_order(list(tokens), seed)
    row = {s: i for i, s in enumerate(ids)}
    matches = np.zeros((len(mixture.components), len(ids)), dtype=bool)
    for c, comp in enumerate(mixture.components):
        matches[c, [row[s] for s, _ in candidates.get(comp.name, [])]] = True
    chosen = allocate_rows(mixture, matches, np.array([tokens[s] for s in ids], dtype=np.int64))
    return {name: [ids[i] for i in rows.tolist()] for name, rows in chosen.items()}
