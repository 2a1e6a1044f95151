"""Packed sequences: many sub-samples in one row, each seeing only itself.

A micro-batch is one row holding every sub-sample of its packs back to back, with no
padding anywhere. Isolation comes from the attention, not from the data:

- ``sdpa``/``eager`` (CPU, tests): a block-diagonal causal 4-D float mask; transformers
  passes a 4-D mask through untouched. Per-sample position ids alone do NOT isolate
  (the second sample's logits moved by ~0.6 when we tried), so the mask is required.
- ``flash_attention_2`` (GPU): position ids restarting at 0 plus ``cu_seq_lens``; the
  varlen kernel attends within each segment, with no L x L mask.

Targets are shifted per sub-sample (the last token of a sub-sample predicts nothing),
and every target token carries the weight of its sub-sample (InternVL 2.5 loss
reweighting): ``token`` 1, ``sample`` 1/n, ``square`` 1/sqrt(n), n = supervised tokens
of that sub-sample. The loss is sum(w * ce) / normaliser, where the trainer makes the
normaliser the sum of weights over the global batch (all micro-batches, all ranks).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

IGNORE = -100
LOSS_REDUCTIONS = ("token", "sample", "square")


@dataclass
class SubSample:
    input_ids: list[int]
    labels_mask: list[bool]
    tiles: torch.Tensor | None  # [n_tiles, 3, H, W] normalised pixels, in image order
    n_images: int = 0


@dataclass
class PackedBatch:
    input_ids: torch.Tensor  # [1, L]
    targets: torch.Tensor  # [1, L]: the token position t must predict, IGNORE where none
    weights: torch.Tensor  # [1, L] float32: loss weight of each target (0 where IGNORE)
    position_ids: torch.Tensor  # [1, L], restarting at 0 in every sub-sample
    seq_lens: list[int]
    pixel_values: torch.Tensor | None  # [tiles, 3, H, W]
    n_images: int = 0
    n_packs: int = 0
    budget_tokens: int = 0  # sum of the packs' token budgets, for the fill ratio
    packs: list[tuple[str, str]] | None = None  # (data source, pack key) of each pack, in order

    @property
    def n_tokens(self) -> int:
        return int(self.input_ids.shape[1])

    def to(self, device) -> "PackedBatch":
        move = lambda t: None if t is None else t.to(device, non_blocking=True)
        return PackedBatch(move(self.input_ids), move(self.targets), move(self.weights), move(self.position_ids),
                           self.seq_lens, move(self.pixel_values), self.n_images, self.n_packs, self.budget_tokens,
                           self.packs)


def sample_weight(n_supervised: int, reduction: str) -> float:
    if reduction not in LOSS_REDUCTIONS:
        raise ValueError(f"loss reduction must be one of {LOSS_REDUCTIONS}, got {reduction!r}")
    if n_supervised == 0:
        return 0.0
    return {"token": 1.0, "sample": 1.0 / n_supervised, "square": 1.0 / math.sqrt(n_supervised)}[reduction]


def collate_packed(subs: list[SubSample], reduction: str = "square", n_packs: int = 0,
                   budget_tokens: int = 0, packs: list[tuple[str, str]] | None = None) -> PackedBatch:
    ids, targets, weights, positions, lens, tiles = [], [], [], [], [], []
    for sub in subs:
        n = len(sub.input_ids)
        # Shift inside the sub-sample: position t predicts token t+1; the last predicts nothing.
        tgt = [sub.input_ids[t + 1] if sub.labels_mask[t + 1] else IGNORE for t in range(n - 1)] + [IGNORE]
        w = sample_weight(sum(sub.labels_mask), reduction)
        ids += sub.input_ids
        targets += tgt
        weights += [w if t != IGNORE else 0.0 for t in tgt]
        positions += range(n)
        lens.append(n)
        if sub.tiles is not None and len(sub.tiles):
            tiles.append(sub.tiles)
    row = lambda values, dtype: torch.tensor([values], dtype=dtype)
    return PackedBatch(
        row(ids, torch.long), row(targets, torch.long), row(weights, torch.float32), row(positions, torch.long),
        lens, torch.cat(tiles) if tiles else None, sum(s.n_images for s in subs), n_packs, budget_tokens, packs,
    )


def block_causal_mask(seq_lens: list[int], dtype: torch.dtype, device=None) -> torch.Tensor:
    """[1, 1, L, L] additive mask: 0 where query i may see key j (same sub-sample, j <= i)."""
    segment = torch.repeat_interleave(torch.arange(len(seq_lens), device=device), torch.tensor(seq_lens, device=device))
    allowed = (segment[:, None] == segment[None, :]) & torch.ones(len(segment), len(segment), dtype=torch.bool,
                                                                    device=device).tril()
    mask = torch.zeros(allowed.shape, dtype=dtype, device=device)
    # Additive, not bool: under eager attention a bool 4-D mask gives silently wrong results.
    return mask.masked_fill_(~allowed, torch.finfo(dtype).min)[None, None]


def attention_inputs(batch: PackedBatch, attn_implementation: str, dtype: torch.dtype) -> dict:
    """The model kwargs that isolate the sub-samples under the given attention implementation."""
    if attn_implementation == "flash_attention_2":
        cu = torch.tensor([0] + batch.seq_lens, device=batch.input_ids.device).cumsum(0).to(torch.int32)
        longest = max(batch.seq_lens)
        return {"position_ids": batch.position_ids, "cu_seq_lens_q": cu, "cu_seq_lens_k": cu,
                "max_length_q": longest, "max_length_k": longest}
    return {"position_ids": batch.position_ids,
            "attention_mask": block_causal_mask(batch.seq_lens, dtype, batch.input_ids.device)}


def weighted_loss_sum(model, batch: PackedBatch, attn_implementation: str = "sdpa",
                      mask_dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """sum over target tokens of weight * cross-entropy, in float32; divide by the normaliser."""
    # use_cache=False: the LLM's own config says True (kept for generation from the checkpoint);
    # in training a KV cache is only memory, and checkpointed layers would drop it with a warning.
    out = model(input_ids=batch.input_ids, pixel_values=batch.pixel_values, use_cache=False,
                **attention_inputs(batch, attn_implementation, mask_dtype))
    logits = out.logits.float().flatten(0, 1)
    ce = F.cross_entropy(logits, batch.targets.flatten(), ignore_index=IGNORE, reduction="none")
    return (ce * batch.weights.flatten()).sum()


def collate_padded(subs: list[SubSample], pad_id: int, reduction: str = "square") -> tuple[dict, torch.Tensor, torch.Tensor]:
    """The baseline packing replaces: one sub-sample per row, right-padded to the longest row.

    Returns (model kwargs, targets [B, L], weights [B, L]). Used by the packing benchmark.
    """
    one = [collate_packed([s], reduction) for s in subs]
    longest = max(b.n_tokens for b in one)
    pad = lambda t, value: F.pad(t, (0, longest - t.shape[1]), value=value)
    ids = torch.cat([pad(b.input_ids, pad_id) for b in one])
    kwargs = {
        "input_ids": ids,
        "attention_mask": torch.cat([pad(torch.ones_like(b.input_ids), 0) for b in one]),
        "position_ids": torch.cat([pad(b.position_ids, 0) for b in one]),
        "pixel_values": torch.cat([b.pixel_values for b in one if b.pixel_values is not None]),
    }
    return kwargs, torch.cat([pad(b.targets, IGNORE) for b in one]), torch.cat([pad(b.weights, 0.0) for b in one])
