"""Tests for pipeline.packing: validity (property-based), determinism, fill and budgets."""
from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.packing import (PackingBudget, PackingResult, pack_greedy_online, pack_offline,
                              pack_one_per_sequence, pack_stats)

_BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_packing.py"


def _make_mix(n: int, seed: int):
    """The benchmark's realistic sample mix (one generator for tests and benchmark)."""
    spec = importlib.util.spec_from_file_location("bench_packing", _BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.make_mix(n, seed)


def assert_valid(result: PackingResult, tokens, tiles, budget: PackingBudget):
    tokens, tiles = np.asarray(tokens), np.asarray(tiles)
    for pack in result.packs:
        assert pack, "empty pack"
        assert tokens[pack].sum() <= budget.max_tokens
        assert tiles[pack].sum() <= budget.max_tiles
    too_big = {i for i in range(len(tokens))
               if tokens[i] > budget.max_tokens or tiles[i] > budget.max_tiles}
    assert sorted(result.oversized) == sorted(too_big)
    placed = Counter(i for pack in result.packs for i in pack)
    assert all(c == 1 for c in placed.values()), "an index is packed twice"
    assert set(placed) == set(range(len(tokens))) - too_big


samples = st.integers(min_value=1, max_value=300).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 5000), min_size=n, max_size=n),
    st.lists(st.integers(0, 20), min_size=n, max_size=n)))
budgets = st.builds(PackingBudget, st.integers(1, 4096), st.integers(1, 16))


@settings(max_examples=60, deadline=None)
@given(samples, budgets, st.integers(0, 2**32 - 1))
def test_offline_valid(data, budget, seed):
    tokens, tiles = data
    assert_valid(pack_offline(tokens, tiles, budget, seed=seed), tokens, tiles, budget)


@settings(max_examples=60, deadline=None)
@given(samples, budgets, st.integers(1, 32), st.integers(0, 2**32 - 1))
def test_greedy_online_valid(data, budget, buffer_size, seed):
    tokens, tiles = data
    result = pack_greedy_online(tokens, tiles, budget, buffer_size=buffer_size, seed=seed)
    assert_valid(result, tokens, tiles, budget)


@settings(max_examples=30, deadline=None)
@given(samples, budgets)
def test_one_per_sequence_valid(data, budget):
    tokens, tiles = data
    result = pack_one_per_sequence(tokens, tiles, budget)
    assert_valid(result, tokens, tiles, budget)
    assert all(len(p) == 1 for p in result.packs)


def test_oversized_reported_not_dropped():
    budget = PackingBudget(max_tokens=1000, max_tiles=4)
    tokens, tiles = [1001, 10, 500, 999, 20], [0, 5, 4, 1, 0]
    for result in (pack_offline(tokens, tiles, budget), pack_greedy_online(tokens, tiles, budget),
                   pack_one_per_sequence(tokens, tiles, budget)):
        assert result.oversized == [0, 1]
        assert_valid(result, tokens, tiles, budget)


def test_empty_input():
    budget = PackingBudget(8192, 48)
    for result in (pack_offline([], [], budget), pack_greedy_online([], [], budget)):
        assert result.packs == [] and result.oversized == []
    assert pack_stats(pack_offline([], [], budget), [], [], budget).token_fill == 0.0


def test_deterministic_for_seed():
    tokens, tiles, _ = _make_mix(500, seed=3)
    budget = PackingBudget(8192, 48)
    assert pack_offline(tokens, tiles, budget, seed=7) == pack_offline(tokens, tiles, budget, seed=7)
    assert (pack_greedy_online(tokens, tiles, budget, seed=7)
            == pack_greedy_online(tokens, tiles, budget, seed=7))
    other = pack_offline(tokens, tiles, budget, seed=8)
    assert_valid(other, tokens, tiles, budget)
    # The seed only shuffles the output order (no large-first ordering in training).
    assert other.packs != pack_offline(tokens, tiles, budget, seed=7).packs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_offline_fill_beats_greedy(seed):
    tokens, tiles, _ = _make_mix(300, seed)
    budget = PackingBudget(max_tokens=8192, max_tiles=48)
    offline = pack_stats(pack_offline(tokens, tiles, budget, seed=seed), tokens, tiles, budget)
    greedy = pack_stats(pack_greedy_online(tokens, tiles, budget, seed=seed), tokens, tiles, budget)
    single = pack_stats(pack_one_per_sequence(tokens, tiles, budget), tokens, tiles, budget)
    assert offline.token_fill >= 0.98
    assert offline.token_fill > greedy.token_fill > single.token_fill
    assert offline.padding_tokens < greedy.padding_tokens


def test_tile_budget_binds():
    # Image-only samples: 10 tiles and 2600 tokens each; the 48-tile budget allows 4 per pack
    # although tokens would allow 6.
    tokens, tiles = [2600] * 12, [10] * 12
    budget = PackingBudget(max_tokens=16384, max_tiles=48)
    result = pack_offline(tokens, tiles, budget)
    assert sorted(len(p) for p in result.packs) == [4, 4, 4]


def test_pack_stats_numbers():
    budget = PackingBudget(max_tokens=100, max_tiles=10)
    result = PackingResult(packs=[[0, 1], [2]], oversized=[3])
    stats = pack_stats(result, [60, 40, 50, 500], [2, 3, 5, 0], budget)
    assert stats.as_dict() == dict(n_samples=4, n_packs=2, n_oversized=1, token_fill=0.75,
                                   tile_fill=0.5, padding_tokens=50)


@pytest.mark.parametrize("max_tokens,max_tiles", [(0, 48), (8192, 0), (-1, 1), (1, -5)])
def test_bad_budget_raises(max_tokens, max_tiles):
    with pytest.raises(ValueError, match="must be > 0"):
        PackingBudget(max_tokens=max_tokens, max_tiles=max_tiles)


def test_bad_inputs_raise():
    budget = PackingBudget(100, 10)
    with pytest.raises(ValueError, match="differ in length"):
        pack_offline([1, 2], [1], budget)
    with pytest.raises(ValueError, match=">= 0"):
        pack_offline([1, -2], [1, 1], budget)
    with pytest.raises(ValueError, match="buffer_size"):
        pack_greedy_online([1], [1], budget, buffer_size=0)
