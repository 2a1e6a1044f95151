"""The multi-stage trainer: each stage loads the previous stage's checkpoint and trains some modules.

One optimizer step (per rank):
1. take the rank's micro-batches of the global batch from the loader (timed: data wait);
2. all-reduce the sum of the loss weights of the whole global batch: that is the
   normaliser, so the loss is the same whatever the number of ranks and micro-batches;
3. forward/backward each micro-batch with loss_sum * world / normaliser (DDP and FSDP
   average gradients over ranks; the factor undoes that), syncing gradients once;
4. clip, step, and log loss, learning rates, tokens/s, images/s, fill and data wait.

A stage ends after ``steps`` optimizer steps or ``tokens`` trained tokens and writes
``STAGE/final`` with save_pretrained; the next stage starts from it. Checkpoints every
``save_every`` steps make a run resumable (``jobs/train_state.py``); re-running the same
command resumes the unfinished stage and skips finished ones.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, replace

import torch

from jobs.train_config import Stage, TrainConfig
from jobs.train_data import PackLoader, check_shard_sets, check_tar_split, make_loader, open_shard_set
from jobs.train_dist import Dist, full_state, init_dist, load_optimizer, unwrap, wrap
from jobs.train_log import StepLogger, read_log
from jobs.train_state import latest_checkpoint, load_state, save_checkpoint, set_rng_state
from model.build import build_model
from model.checkpoint import save_hf
from model.freeze import apply_freezing, group_of, make_optimizer
from model.packed import weighted_loss_sum
from model.tokenizer import fingerprint, load_tokenizer

LOG = "train_log.jsonl"


@dataclass
class StageResult:
    name: str
    steps: int
    final: str | None  # None when the run stopped before the end of the stage
    losses: list[float]


def lr_factor(stage: Stage, step: int, tokens_seen: int) -> float:
    """Linear warm-up, then cosine / linear decay to min_lr_ratio, or constant."""
    if step < stage.warmup_steps:
        return (step + 1) / stage.warmup_steps
    if stage.steps:
        span = max(1, stage.steps - stage.warmup_steps)
        progress = (step - stage.warmup_steps) / span
    else:
        progress = tokens_seen / stage.tokens
    progress = min(max(progress, 0.0), 1.0)
    low = stage.min_lr_ratio
    if stage.schedule == "cosine":
        return low + (1 - low) * 0.5 * (1 + math.cos(math.pi * progress))
    if stage.schedule == "linear":
        return 1 - (1 - low) * progress
    return 1.0


def stage_done(stage: Stage, step: int, tokens_seen: int) -> bool:
    return step >= stage.steps if stage.steps else tokens_seen >= stage.tokens


def resolve_tokenizer(cfg: TrainConfig, manifest: dict):
    path = cfg.tokenizer or manifest.get("tokenizer")
    if path == "byte-level" and manifest.get("dataset"):  # the built-in one is saved beside the catalog
        path = os.path.join(manifest["dataset"], "tokenizer")
    if not path or not os.path.isdir(path):
        raise ValueError(f"tokenizer {path!r} is not a local directory: set `tokenizer:` in the training file "
                         "to the tokenizer the shards were made with")
    return load_tokenizer(path)


def _truncate_log(path: str, stage: str, step: int) -> None:
    """Drop records a crashed run wrote after its last checkpoint: the resumed run writes them again."""
    kept = [r for r in read_log(path) if not (r["stage"] == stage and r["step"] > step)]
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in kept)


def _autocast(cfg: TrainConfig, d: Dist):
    use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and d.device.type == "cuda")
    if not use_bf16:
        return contextlib.nullcontext, torch.float32
    return (lambda: torch.autocast(d.device.type, dtype=torch.bfloat16)), torch.bfloat16


def train_stage(cfg: TrainConfig, index: int, previous: str | None, d: Dist, budget: list[int | None]) -> StageResult:
    stage = cfg.stages[index]
    stage_dir = os.path.join(cfg.out, "stages", f"{index:02d}-{stage.name}")
    sets = [open_shard_set(s) for s in stage.data]
    tokenizer = resolve_tokenizer(cfg, sets[0].manifest)
    tiling = check_shard_sets(sets, fingerprint(tokenizer), stage)
    if cfg.per_rank_shards:  # before building the model: a bad split fails at once
        check_tar_split(sets, d.world, cfg.workers)
    resume = latest_checkpoint(stage_dir)
    start = resume or previous
    model_cfg = replace(cfg.model, pretrained=start, vision=None, llm=None, preset=None) if start else cfg.model
    model = build_model(model_cfg, tokenizer, tiling, seed=cfg.seed).to(d.device)
    apply_freezing(model, stage.train, stage.vision_last_layers)
    wrapped = wrap(model, d, cfg.distributed)
    # Collected after wrapping: FSDP replaces parameters with sharded ones.
    groups = {g: [p for n, p in unwrap(wrapped).named_parameters() if p.requires_grad and group_of(n) == g]
              for g in stage.train}
    optimizer = make_optimizer(groups, stage.lr, stage.weight_decay)
    trainable = [p for ps in groups.values() for p in ps]

    step = tokens_seen = 0
    log_path = os.path.join(cfg.out, LOG)
    if resume:
        state, rng = load_state(resume, d)
        load_optimizer(wrapped, optimizer, state["optimizer"], cfg.distributed, d)
        step, tokens_seen = state["step"], state["tokens_seen"]
        if rng is not None:
            set_rng_state(rng)
        if d.main:
            _truncate_log(log_path, stage.name, step)
    else:
        torch.manual_seed(cfg.seed + index)
        random.seed(cfg.seed + index)
    d.barrier()

    data_seed = random.Random(f"{cfg.seed}/{stage.name}").getrandbits(31)
    loader = PackLoader(sets, tokenizer, tiling, stage, seed=data_seed, rank=d.rank, world=d.world,
                        start=step * stage.global_batch_packs, per_rank_shards=cfg.per_rank_shards,
                        workers=cfg.workers)
    batches = iter(make_loader(loader))
    micro_per_step = loader.per_rank // stage.micro_batch_packs
    autocast, mask_dtype = _autocast(cfg, d)
    attn = cfg.model.attn_implementation
    logger = StepLogger(log_path, stage.steps or 0, f"stage {stage.name}", d.main,
                        os.path.join(cfg.out, "tensorboard") if cfg.tensorboard else None)
    logger.skip_to(step)
    losses = []
    wrapped.train()
    while not stage_done(stage, step, tokens_seen):
        t0 = time.perf_counter()
        micro = [next(batches) for _ in range(micro_per_step)]
        wait = time.perf_counter() - t0
        (norm,) = d.all_sum(sum(float(b.weights.sum()) for b in micro))
        factor = lr_factor(stage, step, tokens_seen)
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        loss_sum = 0.0
        for j, batch in enumerate(micro):
            sync = j == len(micro) - 1
            no_sync = wrapped.no_sync if hasattr(wrapped, "no_sync") and not sync else contextlib.nullcontext
            if hasattr(wrapped, "set_requires_gradient_sync"):  # FSDP2
                wrapped.set_requires_gradient_sync(sync)
            with no_sync():
                with autocast():
                    part = weighted_loss_sum(wrapped, batch.to(d.device), attn, mask_dtype)
                (part * (d.world / max(norm, 1e-12))).backward()
            loss_sum += float(part.detach())
        if stage.grad_clip:
            torch.nn.utils.clip_grad_norm_(trainable, stage.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        n_tokens, n_images, n_budget, loss_total = d.all_sum(
            sum(b.n_tokens for b in micro), sum(b.n_images for b in micro), sum(b.budget_tokens for b in micro),
            loss_sum)
        tokens_seen += int(n_tokens)
        seconds = time.perf_counter() - t0
        loss = loss_total / max(norm, 1e-12)
        losses.append(loss)
        if step % cfg.log_every == 0 or stage_done(stage, step, tokens_seen):
            logger.log({
                "stage": stage.name, "step": step, "loss": loss, "tokens_seen": tokens_seen,
                "lr": {g["name"]: g["lr"] for g in optimizer.param_groups},
                "tokens_per_s": n_tokens / seconds, "images_per_s": n_images / seconds,
                "fill": n_tokens / max(n_budget, 1), "data_wait_s": wait, "step_s": seconds, "world": d.world,
            })
        if budget[0] is not None:
            budget[0] -= 1
            if budget[0] <= 0:  # a simulated crash (tests): stop without saving anything
                logger.close()
                return StageResult(stage.name, step, None, losses)
        if cfg.save_every and step % cfg.save_every == 0 and not stage_done(stage, step, tokens_seen):
            save_checkpoint(stage_dir, step, wrapped, optimizer, tokenizer, tiling, d, cfg.distributed,
                            {"step": step, "tokens_seen": tokens_seen, "data_position": step * stage.global_batch_packs})
    logger.close()
    del batches  # stops data-loader workers before the next stage starts its own

    final = os.path.join(stage_dir, "final")
    model_state, _ = full_state(wrapped, optimizer, cfg.distributed, d)
    if d.main:
        save_hf(unwrap(wrapped), tokenizer, tiling, final, state_dict=model_state)
    d.barrier()
    return StageResult(stage.name, step, final, losses)


def run_train(cfg: TrainConfig, stop_after: int | None = None) -> list[StageResult]:
    """Run (or resume) every stage. ``stop_after``: stop after that many steps in this call, unsaved."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one progress bar: the trainer's
    d = init_dist()
    os.makedirs(cfg.out, exist_ok=True)
    if d.main:
        with open(os.path.join(cfg.out, "train_config.json"), "w", encoding="utf-8") as f:
            json.dump(asdict(cfg), f, indent=2, sort_keys=True)
    previous, results, budget = None, [], [stop_after]
    for index, stage in enumerate(cfg.stages):
        final = os.path.join(cfg.out, "stages", f"{index:02d}-{stage.name}", "final")
        if os.path.exists(os.path.join(final, "config.json")):
            previous = final  # finished in an earlier run
            continue
        result = train_stage(cfg, index, previous, d, budget)
        results.append(result)
        if result.final is None:
            break
        previous = result.final
    return results
