"""Checkpoint writes that never leave a truncated file, and reads that never unpickle code; what `vda fit` checks
about the checkpoint it resumes from, and the staging files a killed run left."""
from __future__ import annotations

import logging
import os
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch import Callback
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ..io import remove_stale_temporaries, write_bytes_atomic

log = logging.getLogger(__name__)


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
        try:
            write_bytes_atomic(path, buffer.getvalue(), fsync=True)
        except OSError as e:  # a full disk: the error names the checkpoint (a bare write error names no file)
            raise OSError(e.errno, f"cannot write the checkpoint ({e.strerror or e})", path) from None

    def load_checkpoint(self, path: _PATH, map_location: Any | None = None, weights_only: bool | None = None):
        # Our checkpoints hold tensors, numbers, strings and plain containers only.
        return super().load_checkpoint(path, map_location=map_location or "cpu", weights_only=True)


class RemoveStaleStaging(Callback):
    """At the start of fitting, rank 0 removes the staging files (`.NAME.<pid>-XXXX.tmp`) that a killed run left in
    the checkpoint folder (a SIGKILL during a save leaves one per checkpoint, as big as the checkpoint)."""

    def on_fit_start(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        folders = {str(cb.dirpath) for cb in trainer.checkpoint_callbacks if getattr(cb, "dirpath", None)}
        for folder in folders:
            if "://" in folder:
                continue
            for path in remove_stale_temporaries(folder, "*"):
                log.info("removed %s, a staging file a killed run left", path)


class ResumeError(ValueError):
    """`--ckpt_path` names nothing usable; the message is one line naming the file and how to go on."""


def resolve_resume_path(ckpt_path: str | None, folder: str | None) -> str | None:
    """The file `vda fit --ckpt_path X` resumes from, checked before any training.

    "last" is `<folder>/last.ckpt`; if that one is truncated or damaged it is skipped with a warning that names it,
    for the newest valid checkpoint in the folder (the resume finder's rule, `cluster/resume.py`). A file given by
    path must be a complete torch archive that loads without running code. Other Lightning keywords ("best",
    "hpc", "registry") and remote URLs pass unchanged.
    """
    from ..checkpoints.read import read_checkpoint
    from ..cluster.resume import checkpoint_problem, find_resume_checkpoint

    if ckpt_path is None or ckpt_path in ("best", "hpc", "registry") or "://" in str(ckpt_path):
        return ckpt_path
    if ckpt_path == "last":
        if not folder or "://" in folder:
            return ckpt_path  # Lightning resolves it (a logger's folder, a remote store)
        last = os.path.join(folder, "last.ckpt")
        if not os.path.exists(last):
            raise ResumeError(f"--ckpt_path last: {last} does not exist (nothing to resume; drop --ckpt_path to "
                              "start the run)")
        problem = checkpoint_problem(last)
        if problem is None:
            return last
        found = find_resume_checkpoint(folder)
        if found is None:
            raise ResumeError(f"--ckpt_path last: {last} is {problem} and {folder} holds no other valid "
                              "checkpoint; start afresh without --ckpt_path")
        log.warning("--ckpt_path last: %s is %s; resuming from the newest valid checkpoint %s instead",
                    last, problem, found)
        ckpt_path = str(found)
    problem = checkpoint_problem(ckpt_path)
    if problem is not None:
        raise ResumeError(f"{ckpt_path}: cannot resume from it: {problem} (vda submit --find-checkpoint "
                          f"{os.path.dirname(ckpt_path) or '.'} names the newest valid one)")
    try:  # the weights-only unpickler on the pickle part alone (mmap: the tensors are not read)
        torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        read_checkpoint(ckpt_path)  # CheckpointError in one line for a refused (code-carrying) or unreadable pickle
    return ckpt_path
