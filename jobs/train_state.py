"""Resumable checkpoints: an HF model directory plus everything else a run needs to go on.

    STAGE/checkpoints/step-0000040/   model (save_pretrained), tokenizer, image processor
                                      trainer_state.pt   step, tokens seen, optimizer, data position
                                      rng-rank0.pt ...   each rank's torch and Python RNG states

The learning-rate schedule is a function of (step, tokens seen), so those two numbers
are its state. The data position is the global pack index the next step starts at.
A checkpoint is written into ``step-N.tmp`` and renamed once complete; loading takes
the newest complete one. Everything loads with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import glob
import os
import random
import shutil

import torch

from jobs.train_dist import Dist, full_state
from model.checkpoint import write_hf

STATE = "trainer_state.pt"


def latest_checkpoint(stage_dir: str) -> str | None:
    done = [p for p in glob.glob(os.path.join(stage_dir, "checkpoints", "step-*")) if os.path.exists(os.path.join(p, STATE))]
    return max(done, key=lambda p: int(p.rsplit("-", 1)[-1])) if done else None


def rng_state() -> dict:
    version, internal, gauss = random.getstate()
    state = {"torch": torch.get_rng_state(), "python": [version, list(internal), gauss]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def save_checkpoint(stage_dir: str, step: int, model, optimizer, tokenizer, tiling, d: Dist, mode: str,
                    progress: dict) -> str:
    final = os.path.join(stage_dir, "checkpoints", f"step-{step:07d}")
    tmp = final + ".tmp"
    model_state, optim_state = full_state(model, optimizer, mode, d)
    if d.main:
        shutil.rmtree(tmp, ignore_errors=True)
        from jobs.train_dist import unwrap

        write_hf(unwrap(model), tokenizer, tiling, tmp, state_dict=model_state)
    d.barrier()
    torch.save(rng_state(), os.path.join(tmp, f"rng-rank{d.rank}.pt"))
    d.barrier()
    if d.main:
        torch.save({**progress, "optimizer": optim_state}, os.path.join(tmp, STATE))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    d.barrier()
    return final


def load_state(checkpoint: str, d: Dist) -> tuple[dict, dict | None]:
    """(trainer state, this rank's RNG state or None when the world size changed)."""
    state = torch.load(os.path.join(checkpoint, STATE), map_location="cpu", weights_only=True)
    rng_path = os.path.join(checkpoint, f"rng-rank{d.rank}.pt")
    rng = torch.load(rng_path, weights_only=True) if os.path.exists(rng_path) else None
    return state, rng
