"""Training plumbing: atomic checkpoint writes, the run config beside the checkpoints, the final results table."""
from __future__ import annotations

import json
import os
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ..files import write_bytes_atomic


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's local save goes through fsspec, which stages the file in the system temp dir and then
    `shutil.move`s it: a copy, not an atomic rename, whenever /tmp is another filesystem. A run killed mid-save
    could leave a truncated `last.ckpt`. This writes beside the target and renames."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        path = str(path)
        if "://" in path:  # remote stores: fall back to Lightning's own writer
            return super().save_checkpoint(checkpoint, path)
        import io

        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_bytes_atomic(path, buffer.getvalue(), fsync=True)

    def load_checkpoint(self, path: _PATH, map_location: Any | None = None, weights_only: bool | None = None):
        # Our checkpoints hold tensors, numbers, strings and plain containers only.
        return super().load_checkpoint(path, map_location=map_location or "cpu", weights_only=True)


class SaveConfigBesideCheckpoints(SaveConfigCallback):
    """Also writes the run's full config as `config.yaml` into every ModelCheckpoint folder."""

    def save_config(self, trainer, pl_module, stage: str) -> None:
        text = self.parser.dump(self.config, skip_none=False)
        for callback in trainer.checkpoint_callbacks:
            dirpath = getattr(callback, "dirpath", None)
            if dirpath and "://" not in str(dirpath):
                write_bytes_atomic(os.path.join(str(dirpath), "config.yaml"), text.encode(), fsync=True)


def format_results_table(before: dict[str, dict] | None, after: dict[str, dict]) -> str:
    """Plain-text table: one row per dataset and metric, before/after columns when `before` is known."""
    lines = []
    head = f"{'dataset':<16} {'metric':<8} " + (f"{'before':>10} {'after':>10} {'change':>8}" if before else f"{'value':>10}")
    lines += [head, "-" * len(head)]
    for name in sorted(after):
        for metric, value in after[name].items():
            if before and name in before and metric in before[name]:
                old = before[name][metric]
                change = f"{100 * (value - old) / old:+.1f}%" if old else "n/a"
                lines.append(f"{name:<16} {metric:<8} {old:>10.4f} {value:>10.4f} {change:>8}")
            else:
                lines.append(f"{name:<16} {metric:<8} {value:>10.4f}")
    return "\n".join(lines)


def write_results(path: str, before: dict | None, after: dict, step: int) -> None:
    payload = {"step": step, "before": before, "after": after}
    write_bytes_atomic(path, json.dumps(payload, indent=1).encode(), fsync=True)
