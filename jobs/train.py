"""``tessera train TRAIN.yaml``: multi-stage VLM training on packed shards.

    tessera train jobs/examples/train_internvl25.yaml [--out DIR]
    torchrun --nproc_per_node 8 -m jobs.train TRAIN.yaml          # DDP (or `distributed: fsdp`)

Re-running the same command resumes: finished stages are skipped, an unfinished one
restarts from its newest checkpoint. Logs go to OUT/train_log.jsonl and stdout.
"""
from __future__ import annotations

import sys


def _train(args) -> int:
    from jobs.train_config import load_train_config
    from jobs.train_dist import shutdown
    from jobs.train_loop import run_train

    overrides = {"out": args.out} if args.out else {}
    cfg = load_train_config(args.config, overrides)
    try:
        results = run_train(cfg, stop_after=args.stop_after)
    finally:
        shutdown()
    import os

    for r in results if os.environ.get("RANK", "0") == "0" else []:
        if r.losses:
            print(f"stage {r.name}: {r.steps} steps, loss {r.losses[0]:.4f} -> {r.losses[-1]:.4f}"
                  + (f", saved {r.final}" if r.final else " (stopped)"))
    return 0


def add_arguments(sp) -> None:
    sp.add_argument("config", help="training YAML (see jobs/examples/train_*.yaml)")
    sp.add_argument("--out", help="output folder, overriding the file's 'out'")
    sp.add_argument("--stop-after", type=int, default=None,
                    help="stop after N optimizer steps without saving (simulates a crash; for resume tests)")


def add_command(sub) -> None:
    sp = sub.add_parser("train", help="train a ViT-MLP-LLM model on packed shards, in stages",
                        description="Train the stages of TRAIN.yaml in order, each from the previous stage's "
                                    "checkpoint. Re-running resumes. Under torchrun: DDP or FSDP2.")
    add_arguments(sp)
    sp.set_defaults(func=_train)


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``python -m jobs.train`` (what torchrun launches)."""
    import argparse

    from jobs.cli import USER_ERRORS

    p = argparse.ArgumentParser(prog="tessera train")
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return _train(args)
    except USER_ERRORS as exc:
        print(f"tessera train: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
