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
    return sorted(sample_ids, key=lambda s: hashlib.sha256(f"{seed}:{s}".encode()).digest())


def allocate(
    mixture: Mixture, candidates: dict[str, list[tuple[str, int]]], seed: int
) -> dict[str, list[str]]:
    """Pick sample ids per component from ``candidates`` (name -> [(sample_id, tokens)])."""
    taken: set[str] = set()
    pools: dict[str, list[tuple[str, int]]] = {}
    for comp in mixture.components:  # first matching component wins
        tokens = dict(candidates.get(comp.name, []))
        pool = [(s, tokens[s]) for s in seeded_order(list(tokens), seed) if s not in taken]
        taken.update(s for s, _ in pool)
        pools[comp.name] = pool

    chosen: dict[str, list[str]] = {}
    for comp in mixture.components:
        if comp.weighted:
            continue
        picked, used = [], 0
        for sid, tok in pools[comp.name]:
            if comp.max_samples is not None and len(picked) >= comp.max_samples:
                break
            if comp.max_tokens is not None and used + tok > comp.max_tokens:
                continue
            picked.append(sid)
            used += tok
        chosen[comp.name] = picked

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
            chosen[c.name] = [s for s, _ in pools[c.name][:want]]
    return chosen
