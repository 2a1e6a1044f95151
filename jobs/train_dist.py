"""Process groups, model wrapping and collectives for ``torchrun`` (a no-op for one process).

DDP keeps a full model replica per rank and averages gradients; FSDP2 (``fully_shard``
per ViT and LLM layer, then the root) shards parameters, gradients and optimizer state
for models that do not fit one GPU. Both average gradients over ranks, which the loss
scaling in the trainer accounts for. NCCL on GPU, gloo on CPU (the tests).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_sum(self, *values: float) -> list[float]:
        """Sum floats over ranks (float64, so counts stay exact)."""
        t = torch.tensor(values, dtype=torch.float64, device=self.device if self.device.type == "cuda" else "cpu")
        if self.world > 1:
            dist.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def init_dist() -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", device_id=device if cuda else None)
    return Dist(int(os.environ.get("RANK", "0")), world, local_rank, device)


def wrap(model: torch.nn.Module, d: Dist, mode: str) -> torch.nn.Module:
    if d.world == 1:
        return model
    if mode == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for layer in list(model.model.vision_tower.encoder.layer) + list(model.model.language_model.layers):
            fully_shard(layer)
        return fully_shard(model)
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[d.device.index] if d.device.type == "cuda" else None)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") and not hasattr(model, "config") else model


def full_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, mode: str, d: Dist):
    """(model state dict, optimizer state dict), whole, on every rank (FSDP gathers shards)."""
    if d.world > 1 and mode == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        return get_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return unwrap(model).state_dict(), optimizer.state_dict()


def load_optimizer(model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict, mode: str, d: Dist) -> None:
    if d.world > 1 and mode == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))
    else:
        optimizer.load_state_dict(state)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
