"""Checkpoint writes that never leave a truncated file, and reads that never unpickle code."""
from __future__ import annotations

from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ..io import write_bytes_atomic


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
