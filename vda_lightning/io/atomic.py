"""Atomic writes: every output appears under its final name complete, or not at all.

A writer works on a hidden temporary name beside the target (same folder, hence same filesystem) and the
finished file or folder is moved into place with one `os.replace`. A crash or an exception leaves the target as
it was and removes the temporary. The temporary's name carries the writer's pid (`.NAME.<pid>-XXXX.tmp`), so a
command that starts again can remove what a killed run left (`remove_stale_temporaries`) without touching the
temporaries of a writer that is still running. Streaming writers (shards, videos, per-frame folders) hold an
`AtomicWrite` open across many calls and `commit()` it at the end; one-shot writers use `atomic_path` or
`write_*_atomic`.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _default_mode(folder: bool) -> int:
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if folder else 0o666) & ~umask  # what open()/mkdir() would give; mkstemp/mkdtemp give 0600/0700


class AtomicWrite:
    """A temporary file (or folder, `folder=True`) `tmp` beside `path` that becomes `path` on `commit()`.

    `abort()` removes the temporary. As a context manager it commits when the block succeeds and aborts when it
    raises. A committed folder replaces an existing one: the old folder is moved aside first and removed after the
    rename, so the final name never shows a half-written folder. `mode`: permissions of the result (default: the
    umask's, as `open` would give); `fsync`: flush a file to disk before the rename (checkpoints, results).
    """

    def __init__(self, path: str | os.PathLike, mode: int | None = None, fsync: bool = False, folder: bool = False):
        self.path = Path(path)
        self.mode, self.fsync, self.folder = mode, fsync, folder
        self.path.parent.mkdir(parents=True, exist_ok=True)
        prefix, suffix = f".{self.path.name}.{os.getpid()}-", ".tmp"
        if folder:
            self.tmp = Path(tempfile.mkdtemp(dir=self.path.parent, prefix=prefix, suffix=suffix))
        else:
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=prefix, suffix=suffix)
            os.close(fd)
            self.tmp = Path(tmp)
        self.done = False

    def commit(self) -> Path:
        """Move the finished temporary into place (once); on any failure the temporary is removed."""
        if self.done:
            raise RuntimeError(f"{self.path}: atomic write already finished")
        try:
            if self.fsync and not self.folder:
                with open(self.tmp, "rb+") as f:
                    os.fsync(f.fileno())
            os.chmod(self.tmp, _default_mode(self.folder) if self.mode is None else self.mode)
            if self.folder and self.path.exists():
                old = Path(tempfile.mkdtemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".old"))
                os.replace(self.path, old / "x")
                os.replace(self.tmp, self.path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self.done = True
        return self.path

    def abort(self) -> None:
        """Remove the temporary; the target keeps what it had."""
        self.done = True
        if self.folder:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> AtomicWrite:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.done:
            return
        if exc_type is None:
            self.commit()
        else:
            self.abort()


_STAGING = re.compile(r"^\.(?P<name>.+)\.(?:(?P<pid>\d+)-)?[^./]+\.tmp$")


def _pid_alive(pid: int) -> bool:
    """Whether a process `pid` runs. A zombie does not: a killed writer re-parented to an init that reaps late
    still answers signal 0, but it will never finish its staging file."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no procfs (macOS) or gone meanwhile
        return True
    return stat[stat.rindex(")") + 2:][:1] not in ("Z", "X")


def remove_stale_temporaries(folder: str | os.PathLike, targets: str = "*") -> list[Path]:
    """Remove the temporaries `AtomicWrite` left in `folder` for targets matching the glob `targets` when their
    writer is no longer running (a killed run; names without a pid are older, hence stale). Returns what was
    removed. Call it when a command starts writing into a folder again (vda fit, vda shard)."""
    import fnmatch

    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        m = _STAGING.match(path.name)
        if m is None or not fnmatch.fnmatch(m.group("name"), targets):
            continue
        pid = m.group("pid")
        if pid is not None and (int(pid) == os.getpid() or _pid_alive(int(pid))):
            continue  # ours, or a live writer's (another command on this machine): in use
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


@contextmanager
def atomic_path(path: str | os.PathLike, mode: int | None = None, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block succeeds it replaces `path` in one rename.

    A crash or an exception leaves `path` untouched (and the temporary file removed), so a half-written file
    never looks complete. `mode`: the file's permissions (default: 0o666 less the umask, like `open`).
    """
    with AtomicWrite(path, mode, fsync) as target:
        yield target.tmp


def write_bytes_atomic(path: str | os.PathLike, data: bytes, mode: int | None = None, fsync: bool = False) -> None:
    with atomic_path(path, mode, fsync) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str, mode: int | None = None, fsync: bool = False) -> None:
    write_bytes_atomic(path, text.encode(), mode, fsync)


def write_json_atomic(path: str | os.PathLike, obj, indent: int | None = 1, fsync: bool = False) -> None:
    """`obj` as JSON (indented one space, newline-terminated), atomically."""
    write_text_atomic(path, json.dumps(obj, indent=indent) + "\n", fsync=fsync)


def save_npy_atomic(path: str | os.PathLike, array) -> None:
    """One array as a `.npy` file (no pickles), atomically."""
    import numpy as np

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)
