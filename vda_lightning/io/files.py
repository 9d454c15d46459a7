"""Finding files: natural frame order and folder listings."""
from __future__ import annotations

import os
import re
from pathlib import Path


def natural_key(name: str | os.PathLike) -> list:
    """Sort key for file names: 'frame_10.png' after 'frame_9.png' (digit runs compare as numbers, case ignored)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", os.path.basename(name))]


def list_files(folder: str | os.PathLike, suffixes: tuple[str, ...] | set[str]) -> list[Path]:
    """The files directly in `folder` whose suffix (case ignored) is one of `suffixes`, in natural order.

    A folder that does not exist has no files ([]); callers decide whether that is an error.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    wanted = {s.lower() for s in suffixes}
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in wanted and p.is_file()),
                  key=lambda p: natural_key(p.name))
