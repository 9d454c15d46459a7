"""File helpers shared by every part: atomic writes and natural frame order."""
from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike, mode: int | None = None, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block succeeds it replaces `path` in one rename.

    A crash or an exception leaves `path` untouched (and the temporary file removed), so a half-written file
    never looks complete. `mode`: the file's permissions (default: 0o666 less the umask, like `open`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        if mode is None:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask  # mkstemp creates 0600
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes, mode: int | None = None, fsync: bool = False) -> None:
    with atomic_path(path, mode, fsync) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str, mode: int | None = None) -> None:
    write_bytes_atomic(path, text.encode(), mode)


def natural_key(name: str | os.PathLike) -> list:
    """Sort key for file names: 'frame_10.png' after 'frame_9.png' (digit runs compare as numbers, case ignored)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", os.path.basename(name))]
