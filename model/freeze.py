"""Which parameters learn in a stage: module groups, freezing, optimizer parameter groups.

A stage names module groups (``vision``, ``projector``, ``llm``); everything else is
frozen with ``requires_grad = False``, so it gets no gradient, and it is left out of
the optimizer, so it gets no optimizer state (Adam's two moments would otherwise
cost 8 bytes per frozen parameter for nothing). The LM head is tied to the input
embeddings in most small LLMs; ``named_parameters`` lists a tied tensor once.
"""
from __future__ import annotations

import torch


def group_of(name: str) -> str:
    if ".vision_tower." in f".{name}":
        return "vision"
    if ".multi_modal_projector." in f".{name}":
        return "projector"
    return "llm"  # language model and LM head


def _vision_layer(name: str) -> int | None:
    parts = name.split(".")
    if "encoder" in parts and "layer" in parts:
        i = parts.index("layer")
        if parts[i + 1].isdigit():
            return int(parts[i + 1])
    return None


def apply_freezing(model: torch.nn.Module, train: list[str], vision_last_layers: int = 0) -> dict[str, list[torch.nn.Parameter]]:
    """Set requires_grad for the stage; return the trainable parameters of each trained group."""
    n_vision_layers = model.config.vision_config.num_hidden_layers
    first_trained_layer = n_vision_layers - vision_last_layers if vision_last_layers else 0
    groups: dict[str, list[torch.nn.Parameter]] = {g: [] for g in train}
    for name, param in model.named_parameters():
        group = group_of(name)
        learns = group in train
        if learns and group == "vision" and vision_last_layers:
            layer = _vision_layer(name)
            learns = layer is not None and layer >= first_trained_layer
        param.requires_grad_(learns)
        if learns:
            groups[group].append(param)
    return groups


def make_optimizer(groups: dict[str, list[torch.nn.Parameter]], lr: dict[str, float], weight_decay: float,
                   betas=(0.9, 0.999)) -> torch.optim.AdamW:
    # One param group per module group, in a fixed order, so a saved optimizer state loads back
    # onto the same tensors; "base_lr" is what the schedule scales each step.
    param_groups = [
        {"params": groups[g], "lr": lr[g], "base_lr": lr[g], "name": g, "weight_decay": weight_decay}
        for g in ("vision", "projector", "llm") if g in groups and groups[g]
    ]
    return torch.optim.AdamW(param_groups, betas=betas)
