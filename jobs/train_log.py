"""Per-step training logs: a JSONL file (one object per step), a progress bar, optionally TensorBoard."""
from __future__ import annotations

import json
import os

from tqdm import tqdm


class StepLogger:
    def __init__(self, path: str, total: int, desc: str, enabled: bool = True, tensorboard_dir: str | None = None):
        self.enabled = enabled
        self.file = open(path, "a", encoding="utf-8") if enabled else None
        self.bar = tqdm(total=total, desc=desc, unit="step", disable=not enabled, dynamic_ncols=True)
        self.tb = None
        if enabled and tensorboard_dir:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(tensorboard_dir)
            except ImportError:  # tensorboard is optional
                print("tensorboard is not installed: logging to JSONL only")

    def skip_to(self, step: int) -> None:
        self.bar.update(step - self.bar.n)

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        self.file.write(json.dumps(record, sort_keys=True) + "\n")
        self.file.flush()
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{record['loss']:.4f}", tok_s=f"{record['tokens_per_s']:.0f}",
                             fill=f"{record['fill']:.2f}", wait=f"{record['data_wait_s']:.2f}")
        if self.tb:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "step":
                    self.tb.add_scalar(f"{record['stage']}/{key}", value, record["step"])

    def close(self) -> None:
        self.bar.close()
        if self.file:
            self.file.close()
        if self.tb:
            self.tb.close()


def read_log(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
