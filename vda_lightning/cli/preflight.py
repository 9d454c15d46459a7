"""Checks before weight, shared by every command (issue 28): what a command line names is checked here, torch-free,
before a command imports torch or loads a model, so that a mistake costs well under a second.

* `checked_weights(name)`: a checkpoint option. A Hub name (`vda-small`, `hf://ORG/REPO[/FILE][@REV]`) passes
  untouched (its syntax checked; the load fetches the file); any other name must be a regular readable file that
  holds weights (`checkpoints.peek.checked_checkpoint`, the same refusal lines as `read_checkpoint`), an export
  folder standing for its `model.safetensors` (`checkpoints.hub.checkpoint_path`). CheckpointError otherwise.
* `unusable_input(path)`: an input file or folder (exists, a folder or a regular readable file), as a line or None.
* `check_folder(path, what)`: an input folder that must exist.

Each command calls these from its own checks (`inference/preflight.py`, `export.check_export`,
`evaluation/cli.check_inputs`, `training/pseudolabel.main`, `training/preflight.py` for fit/validate); nothing here
imports torch.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..trust import ReadError, display, regular_file
from .errors import CommandError


def checked_weights(name) -> Path | None:
    """The checked local file `name` stands for, or None for a Hub name (module docstring)."""
    from ..checkpoints.hub import checkpoint_path, is_hub_name, parse_hub_name
    from ..checkpoints.peek import checked_checkpoint

    if is_hub_name(name):
        parse_hub_name(name)  # a malformed hf:// name is one line now; the file itself is the load's to fetch
        return None
    return checked_checkpoint(checkpoint_path(name))


def unusable_input(item: str | os.PathLike) -> str | None:
    """Why an input cannot be read (the line `frame_sources.open_source` would give), or None."""
    path = Path(item)
    if not path.exists():
        return f"{display(path)}: no such file or directory"
    if path.is_dir():
        readable = os.access(path, os.R_OK | os.X_OK)
        return None if readable else f"{display(path)}: folder cannot be read (permission denied)"
    try:
        regular_file(path, "input")
    except ReadError as e:
        return str(e)
    return None if os.access(path, os.R_OK) else f"{display(path)}: input cannot be read (permission denied)"


def check_folder(path: str | os.PathLike, what: str = "folder") -> None:
    """CommandError unless `path` is a folder that can be listed."""
    if not os.path.exists(path):
        raise CommandError(f"{display(path)}: no such {what}")
    if not os.path.isdir(path):
        raise CommandError(f"{display(path)}: {what} is a file, not a folder")
    if not os.access(path, os.R_OK | os.X_OK):
        raise CommandError(f"{display(path)}: {what} cannot be read (permission denied)")
