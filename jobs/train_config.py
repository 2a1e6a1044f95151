"""The training file: model, stages, data mixtures; YAML in, validated dataclasses out.

    out: runs/internvl25
    model: {preset: tiny}              # or {pretrained: DIR} or {vision: DIR, llm: DIR}
    stages:
      - name: projector-warmup
        train: [projector]               # any of vision, projector, llm
        lr: {projector: 2.0e-4}
        steps: 100                       # or tokens: 50_000_000
        data: [{name: captions, shards: out/shards-a, weight: 1.0}]

Every stage starts from the previous stage's final checkpoint. See jobs/examples/train_*.yaml.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import yaml

from model.config import ModelConfig
from model.packed import LOSS_REDUCTIONS
from schemas.config import ConfigError, from_dict

MODULE_GROUPS = ("vision", "projector", "llm")
SCHEDULES = ("cosine", "linear", "constant")


@dataclass
class DataSource:
    name: str
    shards: str  # a shard folder written by `tessera shard` (or a glob of .tar files)
    weight: float = 1.0  # relative frequency of this source's packs in the mixture
    jpeg_quality: list[int] | None = None  # e.g. [75, 100]: re-encode each image at a random quality
    shuffle_buffer: int = 64  # packs held in the shuffle buffer

    def __post_init__(self):
        if self.weight <= 0:
            raise ValueError(f"data source {self.name}: weight must be > 0")
        if self.jpeg_quality is not None and not (len(self.jpeg_quality) == 2 and 1 <= self.jpeg_quality[0]
                                                  <= self.jpeg_quality[1] <= 100):
            raise ValueError(f"data source {self.name}: jpeg_quality is [low, high] within 1..100")


@dataclass
class Stage:
    name: str
    train: list[str]  # module groups that learn; the others are frozen
    lr: dict[str, float]  # learning rate per trained module group
    data: list[DataSource]
    steps: int = 0  # optimizer steps; or
    tokens: int = 0  # stop once this many tokens were trained on
    vision_last_layers: int = 0  # with "vision" in train: only the last N ViT layers learn (0: all)
    warmup_steps: int = 0
    schedule: str = "cosine"
    min_lr_ratio: float = 0.0  # the schedule decays to lr * min_lr_ratio
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # 0: none
    global_batch_packs: int = 1  # packs per optimizer step over all ranks
    micro_batch_packs: int = 1  # packs per forward pass (one packed row)
    max_tokens: int = 0  # packing budgets: refuse shards packed for longer sequences (0: no check)
    max_tiles: int = 0
    loss_reduction: str = "square"  # token | sample | square (InternVL 2.5)

    def __post_init__(self):
        where = f"stage {self.name}"
        bad = [m for m in self.train if m not in MODULE_GROUPS]
        if bad or not self.train:
            raise ValueError(f"{where}: train lists module groups among {MODULE_GROUPS}, got {self.train}")
        if set(self.lr) != set(self.train):
            raise ValueError(f"{where}: give an lr for exactly the trained groups {self.train}, got {sorted(self.lr)}")
        if (self.steps > 0) == (self.tokens > 0):
            raise ValueError(f"{where}: give one of steps or tokens (> 0)")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"{where}: schedule must be one of {SCHEDULES}")
        if self.loss_reduction not in LOSS_REDUCTIONS:
            raise ValueError(f"{where}: loss_reduction must be one of {LOSS_REDUCTIONS}")
        if not self.data:
            raise ValueError(f"{where}: data lists at least one shard set")
        if self.global_batch_packs < 1 or self.micro_batch_packs < 1:
            raise ValueError(f"{where}: global_batch_packs and micro_batch_packs must be >= 1")


@dataclass
class TrainConfig:
    out: str
    model: ModelConfig
    stages: list[Stage]
    tokenizer: str | None = None  # default: the tokenizer the shards were made with (their manifest)
    seed: int = 0
    workers: int = 0  # data-loader worker processes per rank
    # false: every rank reads every tar and keeps its slice of each global batch (the stream is
    # the same for any world size and worker count). true: whole tars go to the world x workers
    # readers, each tar read once per epoch (very large shard sets); needs that many tars per set.
    per_rank_shards: bool = False
    precision: str = "auto"  # auto: bf16 autocast on GPU, float32 on CPU; or bf16 / fp32
    distributed: str = "ddp"  # ddp | fsdp (FSDP2 fully_shard per layer) under torchrun
    save_every: int = 0  # steps between resumable checkpoints (0: only at the end of each stage)
    log_every: int = 1
    tensorboard: bool = False
    extra: dict = field(default_factory=dict)  # free-form notes carried into the run manifest

    def __post_init__(self):
        if not self.stages:
            raise ValueError("stages: list at least one stage")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique, got {names}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError("precision must be auto, bf16 or fp32")
        if self.distributed not in ("ddp", "fsdp"):
            raise ValueError("distributed must be ddp or fsdp")
        if self.workers < 0:
            raise ValueError("workers must be >= 0")


def _resolve(path: str | None) -> str | None:
    # Relative local paths are taken from the current directory (as in ingestion specs).
    return path if path is None or "://" in path else os.path.abspath(path)


def parse_train_config(data) -> TrainConfig:
    cfg = from_dict(TrainConfig, data, "train")
    cfg.out = _resolve(cfg.out)
    cfg.tokenizer = _resolve(cfg.tokenizer)
    for key in ("pretrained", "vision", "llm"):
        setattr(cfg.model, key, _resolve(getattr(cfg.model, key)))
    for stage in cfg.stages:
        for src in stage.data:
            src.shards = _resolve(src.shards)
    return cfg


def load_train_config(path: str, overrides: dict | None = None) -> TrainConfig:
    if not os.path.exists(path):
        raise FileNotFoundError(f"training file {path!r} not found")
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a training file is a mapping with keys out, model, stages")
    data.update(overrides or {})
    return parse_train_config(data)
