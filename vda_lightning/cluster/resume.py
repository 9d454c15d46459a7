"""Find the checkpoint a (re)started run should resume from: the newest one that is complete.

Checkpoints are written atomically (temp name + rename), so a half-written file should never carry a `.ckpt` name;
this resolver is the second line of defence for files cut short by other means (a full disk, a copy, a crash of a
non-atomic writer). It needs no torch: `torch.save` writes a zip archive, whose central directory sits at the end
(a truncated file has none) and whose members carry CRC-32s (flipped bytes fail `testzip`).

    vda-submit --find-checkpoint RUN_DIR     # prints the path, or nothing (used by the rendered sbatch script)

`existing_run(RUN_DIR)` says whether a run folder already holds a run: vda-fit and vda-submit refuse to start a
fresh run there (one run folder per experiment).
"""
from __future__ import annotations

import logging
import os
import zipfile
from pathlib import Path

log = logging.getLogger(__name__)


def checkpoint_problem(path: str | os.PathLike) -> str | None:
    """None when `path` is a complete torch checkpoint, else a short reason ("truncated or not a zip archive" ...)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if not any(name.endswith("/data.pkl") or name == "data.pkl" for name in names):
                return "no data.pkl inside (not a torch.save archive)"
            bad = archive.testzip()
            if bad is not None:
                return f"CRC mismatch in member {bad}"
    except zipfile.BadZipFile:
        return "truncated or not a zip archive"
    except OSError as e:
        return f"unreadable ({e.strerror or e})"
    return None


def is_valid_checkpoint(path: str | os.PathLike) -> bool:
    return checkpoint_problem(path) is None


def find_resume_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest (by modification time, then name) valid `*.ckpt` anywhere under `run_dir`; None if there is none.

    Hidden files (`.tmp-*`, the atomic writers' staging names) are never candidates. Invalid files are skipped
    with a warning that names the file and the cause.
    """
    root = Path(run_dir)
    if not root.is_dir():
        return None
    candidates = []
    for path in root.rglob("*.ckpt"):
        if path.name.startswith(".") or not path.is_file():
            continue
        try:
            candidates.append((path.stat().st_mtime_ns, str(path), path))
        except FileNotFoundError:  # replaced between listing and stat
            continue
    for _, _, path in sorted(candidates, reverse=True):
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        log.warning("skipping checkpoint %s: %s", path, problem)
    return None


def existing_run(run_dir: str | os.PathLike, checkpoint_dir: str | os.PathLike | None = None) -> Path | None:
    """A file showing that `run_dir` already holds a run: its results (`final_validation.json`) or a checkpoint (in
    `<run_dir>/checkpoints` or `checkpoint_dir`; staging files excluded), or None.

    Other files do not count: the `slurm/` folder vda-submit writes before the job starts, and what an interrupted
    start wrote (its `config.yaml`, logger files: Ctrl-C during the first validation) — it holds nothing to resume,
    and a fresh run there rewrites its config.
    """
    root = Path(run_dir)
    if (root / "final_validation.json").is_file():
        return root / "final_validation.json"
    folders = [root / "checkpoints"] + ([Path(checkpoint_dir)] if checkpoint_dir else [])
    for folder in dict.fromkeys(folders):
        if folder.is_dir():
            found = sorted(p for p in folder.glob("*.ckpt") if not p.name.startswith("."))
            if found:
                return found[0]
    return None
