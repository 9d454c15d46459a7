"""A test-only callback that writes, for every training step, which samples it trained on.

`--trainer.callbacks+=tests.fakes.recorder.StepKeys` (with the repository root on PYTHONPATH) appends one JSON line
per step to `$VDA_TEST_STEP_KEYS.rank<R>`: {"step": global step before the update, "keys": [video sample keys]}.
"""
from __future__ import annotations

import json
import os

from lightning.pytorch import Callback


class StepKeys(Callback):
    def __init__(self, path: str | None = None):
        self.path = path or os.environ.get("VDA_TEST_STEP_KEYS")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if not self.path:
            return
        keys = list(batch["video"]["key"]) if batch.get("video") else []
        row = {"step": trainer.global_step, "epoch": trainer.current_epoch, "batch": batch_idx, "keys": keys}
        with open(f"{self.path}.rank{trainer.global_rank}", "a") as f:
            f.write(json.dumps(row) + "\n")


def read_step_keys(path: str, rank: int = 0) -> dict[int, list[str]]:
    """{step: keys}; a step recorded twice (trained again after a resume) keeps its last record."""
    out: dict[int, list[str]] = {}
    with open(f"{path}.rank{rank}") as f:
        for line in f:
            row = json.loads(line)
            out[row["step"]] = row["keys"]
    return out


class ValidationOutputs(Callback):
    """Keeps every validation batch with the module's output (CPU copies), to score them again in a test."""

    def __init__(self):
        self.seen: list[tuple[dict, dict]] = []

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        def cpu(x):
            return x.detach().cpu() if hasattr(x, "detach") else x

        self.seen.append(({k: cpu(v) for k, v in outputs.items()}, {k: cpu(v) for k, v in batch.items()}))
