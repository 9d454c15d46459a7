"""Checkpoint writes that never leave a truncated file, and reads that never unpickle code; what `vda fit` checks
about the checkpoint it resumes from, and the staging files a killed run left.

A checkpoint is a file: what Lightning reads back from it crosses the trust boundary (`vda_lightning.trust`).
`AtomicCheckpointIO.load_checkpoint` loads with torch's weights-only unpickler (no code runs) and checks the
top-level fields Lightning reads before it uses them (`check_lightning_checkpoint`). The model's hyper-parameters in
the file are not used on a resume (the recipe builds the model); the DataModule's saved position is checked by the
DataModule (`data/datamodule.py`); `ModelCheckpoint`'s saved state names files Lightning later *deletes* (the
previous best / last checkpoint): `ConfineSavedCheckpointPaths` refuses paths that could reach outside this run's
checkpoint folder, and `remove_checkpoint` only ever removes one file, never a folder.
"""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch import Callback
from lightning.pytorch.plugins.io import TorchCheckpointIO

from .. import trust
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
        checkpoint = super().load_checkpoint(path, map_location=map_location or "cpu", weights_only=True)
        check_lightning_checkpoint(checkpoint, path)
        return checkpoint

    def remove_checkpoint(self, path: _PATH) -> None:
        """Remove one checkpoint file (Lightning's own removes recursively: a saved path naming a folder would take
        the folder with it)."""
        path = str(path)
        if "://" in path:
            return super().remove_checkpoint(path)
        if os.path.isdir(path) and not os.path.islink(path):
            log.warning("not removing %s: a folder, not a checkpoint file", path)
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


class ResumeError(ValueError):
    """`--ckpt_path` names nothing usable; the message is one line naming the file and how to go on."""


_TOP_LEVEL = {"state_dict": dict, "callbacks": dict, "loops": dict, "optimizer_states": list, "lr_schedulers": list}


def check_lightning_checkpoint(checkpoint: Any, path: _PATH) -> None:
    """The fields Lightning reads from a checkpoint it resumes from, typed before it reads them (a tampered
    version string or a list where a dict belongs would otherwise be a traceback deep inside Lightning)."""
    from packaging.version import InvalidVersion, Version

    what = trust.display(path)
    if not isinstance(checkpoint, dict):
        raise ResumeError(f"{what}: not a Lightning checkpoint (its top level is a {type(checkpoint).__name__})")
    version = checkpoint.get("pytorch-lightning_version", "0.0.0")
    try:
        Version(version if isinstance(version, str) and len(version) < 100 else "?")
    except InvalidVersion:
        raise ResumeError(f"{what}: pytorch-lightning_version is not a version ({str(version)[:60]!r})") from None
    for key, kind in _TOP_LEVEL.items():
        if key in checkpoint and not isinstance(checkpoint[key], kind):
            raise ResumeError(f"{what}: {key} must be a {kind.__name__}, got {type(checkpoint[key]).__name__}")
    for key in ("epoch", "global_step"):
        value = checkpoint.get(key, 0)
        if type(value) is not int or value < 0:
            raise ResumeError(f"{what}: {key} must be an integer >= 0, got {str(value)[:60]!r}")
    for key, state in (checkpoint.get("callbacks") or {}).items():
        if not isinstance(key, str) or not isinstance(state, dict):
            raise ResumeError(f"{what}: callbacks: each entry must be a name and a dict, got {type(key).__name__} "
                              f"and {type(state).__name__}")


SCORE_TYPES = (torch.Tensor, float, int, type(None))
PATH_FIELDS = ("best_model_path", "kth_best_model_path", "last_model_path")
SCORE_FIELDS = ("best_model_score", "kth_value", "current_score")


class ConfineSavedCheckpointPaths(Callback):
    """On a resume, before Lightning's `ModelCheckpoint` takes back its saved state: the checkpoint paths in it (the
    previous best, k-th best and last checkpoint, each of which Lightning deletes when a newer one replaces it)
    must be checkpoint paths as Lightning writes them: absolute and normalized (Lightning only deletes those under
    the current checkpoint folder, and a `..` inside would pass that test), and a remote URL only inside a remote
    checkpoint folder of this run (Lightning deletes any remote path). A malformed one is `ResumeError` (one line
    naming the checkpoint and the field); a well-formed remote path outside this run's folders is dropped with a
    warning (it is another run's checkpoint, which this run must not delete)."""

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        folders = [str(cb.dirpath) for cb in trainer.checkpoint_callbacks if getattr(cb, "dirpath", None)]
        what = trust.display(trainer.ckpt_path) if trainer.ckpt_path else "checkpoint"
        for key, state in (checkpoint.get("callbacks") or {}).items():
            if isinstance(key, str) and key.startswith("ModelCheckpoint") and isinstance(state, dict):
                confine_model_checkpoint_state(state, folders, f"{what}: callbacks.ModelCheckpoint")


def confine_model_checkpoint_state(state: dict, folders: list[str], what: str) -> None:
    """`ModelCheckpoint.state_dict()` from a file, checked (and its out-of-run remote paths dropped) in place."""
    for field in SCORE_FIELDS:
        if not isinstance(state.get(field), SCORE_TYPES):
            raise ResumeError(f"{what}.{field}: not a score ({type(state[field]).__name__})")
    for field in ("monitor", "dirpath"):
        if not isinstance(state.get(field), str | type(None)):
            raise ResumeError(f"{what}.{field}: not a string ({type(state[field]).__name__})")
    for field in PATH_FIELDS:
        if field in state:
            state[field] = _saved_path(state[field], folders, f"{what}.{field}")
    best = state.get("best_k_models", {})
    if not isinstance(best, dict):
        raise ResumeError(f"{what}.best_k_models: not a dict ({type(best).__name__})")
    kept = {}
    for path, score in best.items():
        if not isinstance(score, SCORE_TYPES):
            raise ResumeError(f"{what}.best_k_models: not a score ({type(score).__name__})")
        path = _saved_path(path, folders, f"{what}.best_k_models")
        if path:
            kept[path] = score
    if "best_k_models" in state:
        state["best_k_models"] = kept


def _saved_path(path: Any, folders: list[str], what: str) -> str:
    """A checkpoint path from a saved ModelCheckpoint state: itself, "" when it is to be forgotten, or ResumeError."""
    if not isinstance(path, str):
        raise ResumeError(f"{what}: not a path ({type(path).__name__})")
    if not path:
        return path
    if len(path) > 4096 or any(ord(c) < 32 or ord(c) == 127 for c in path):
        raise ResumeError(f"{what}: not a checkpoint path ({path[:80]!r})")
    if "://" in path or trust.is_remote(path):
        inside = any(path.startswith(f.rstrip("/") + "/") for f in folders if "://" in f)
        if inside and ".." not in path.split("/"):
            return path
        log.warning("%s: %s is not in this run's checkpoint folder; forgotten (never deleted)", what, path)
        return ""
    if not os.path.isabs(path) or os.path.normpath(path) != path:
        raise ResumeError(f"{what}: {path!r} is not an absolute, normalized path (Lightning saves real paths); "
                          "refused")
    return path


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
            found = find_resume_checkpoint(folder)
            if found is None:  # e.g. Ctrl-C before the first checkpoint: the folder may be started afresh
                raise ResumeError(f"--ckpt_path last: {trust.display(folder)} holds no checkpoint (the run stopped "
                                  "before writing one); start it afresh without --ckpt_path")
            log.warning("--ckpt_path last: %s does not exist; resuming from the newest valid checkpoint %s instead",
                        last, found)
            return resolve_resume_path(str(found), folder)
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
