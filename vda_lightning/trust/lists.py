"""A list of paths from a text file (`vda infer --inputs LIST.txt`, `vda pseudolabel --inputs LIST.txt`).

The file comes from outside: it is read whole under the text cap (VDA_MAX_JSON_BYTES), must be UTF-8, and each
entry is a path that later names outputs, so a line holding a control character (a NUL, an escape, a lone CR
inside a name) is refused with its line number rather than passed on. Blank lines and lines starting with `#` are
skipped; the spaces around an entry are not part of it; a relative path is relative to the current folder, as on
the command line.
"""
from __future__ import annotations

import os
import re

from . import limits
from .errors import ReadError
from .paths import display, read_bytes

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def parse_path_list(raw: bytes, what: str, error: type[Exception] = ReadError) -> list[str]:
    """The entries of a path list held in `raw` (see the module docstring); `error` in one line naming `what`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{what}: not UTF-8 text (byte {e.start})") from None
    if text.startswith("\ufeff"):  # a byte-order mark some editors write
        text = text[1:]
    entries = []
    for number, line in enumerate(text.split("\n"), start=1):
        entry = line.removesuffix("\r").strip(" \t")
        if not entry or entry.startswith("#"):
            continue
        if _CONTROL.search(entry):
            raise error(f"{what}: line {number}: the path holds a control character")
        entries.append(entry)
    if not entries:
        raise error(f"{what}: lists no paths (one path a line; blank lines and # comments are skipped)")
    return entries


def read_path_list(path: str | os.PathLike, what: str = "input list", error: type[Exception] = ReadError) -> list[str]:
    """`parse_path_list` of a regular file of at most VDA_MAX_JSON_BYTES."""
    raw = read_bytes(path, what, limits.max_json_bytes(), error)
    return parse_path_list(raw, f"{display(path)}", error)
