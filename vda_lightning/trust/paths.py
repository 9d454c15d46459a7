"""File names and paths from outside: shown safely, opened only when they are regular files, and confined to the
folder they are declared relative to.

* A name is shown with `display()`: bytes that are not UTF-8 and control characters are escaped, so an error line
  stays one line and printable.
* Names are checked with `check_name()` where they become part of something we write (output names, JSON): a name
  that is not valid UTF-8 or holds a control character is refused in one line.
* Native decoders never receive a path (OpenCV crashes on names that are not UTF-8): files are read here, by
  Python, after `regular_file()` says they are regular files (a FIFO would block a reader for ever, a device
  would never end) no bigger than the cap given, and decoders get the bytes.
* A path written inside a file (a benchmark index, a manifest) is relative to a root and `confine()`-d to it: no
  absolute path, no `..` that climbs out; writing to such a path (`confine_output()`) also refuses a symlinked
  folder that leads out of the output root.
"""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from .errors import ReadError

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def display(path: str | os.PathLike | bytes) -> str:
    """`path` as one printable line: undecodable bytes as \\xNN, control characters as \\xNN."""
    text = os.fsdecode(path)
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def check_name(path: str | os.PathLike, what: str = "file", error: type[Exception] = ReadError) -> str:
    """`path` as a str if every character of it is valid UTF-8 and none is a control character, else `error`."""
    text = os.fsdecode(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise error(f"{display(text)}: {what} name is not valid UTF-8; rename it") from None
    if _CONTROL.search(text):
        raise error(f"{display(text)}: {what} name holds a control character; rename it")
    return text


def regular_file(path: str | os.PathLike, what: str = "file", max_bytes: int | None = None,
                 error: type[Exception] = ReadError) -> int:
    """The size of `path` if it is a regular file (following symlinks) of at most `max_bytes`, else `error`."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{display(path)}: {what} does not exist") from None
    except OSError as e:
        raise error(f"{display(path)}: {what} cannot be read ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{display(path)}: {what} is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) else "a device"
        raise error(f"{display(path)}: {what} is {kind}, not a regular file")
    if max_bytes is not None and st.st_size > max_bytes:
        raise error(f"{display(path)}: {what} is {st.st_size:,} bytes, more than the {max_bytes:,} allowed")
    return st.st_size


def read_bytes(path: str | os.PathLike, what: str = "file", max_bytes: int | None = None,
               error: type[Exception] = ReadError) -> bytes:
    """The whole of a regular file of at most `max_bytes` (`regular_file`), read by Python."""
    size = regular_file(path, what, max_bytes, error)
    try:
        with open(path, "rb") as f:  # read what the stat said (+1 to see growth): never a cap-sized buffer
            data = f.read(size + 1)
    except OSError as e:
        raise error(f"{display(path)}: {what} cannot be read ({e.strerror or e})") from None
    if max_bytes is not None and len(data) > max_bytes:  # it grew since the stat
        raise error(f"{display(path)}: {what} is more than the {max_bytes:,} bytes allowed")
    return data


def confine(root: str | os.PathLike, relative, what: str = "path", error: type[Exception] = ReadError) -> Path:
    """`root / relative` for a `relative` path string read from a file, refused (`error`) unless it is a
    non-empty relative path that stays inside `root` after normalisation (no absolute path, no `..` out)."""
    if not isinstance(relative, str) or not relative or "\x00" in relative:
        raise error(f"{what} {display(str(relative))[:80]!r} is not a non-empty path string")
    norm = os.path.normpath(relative)
    if os.path.isabs(relative) or norm == ".." or norm.startswith(".." + os.sep) or norm == ".":
        raise error(f"{what} {display(relative)!r} leaves its folder {display(root)} (paths in it must be "
                    "relative and stay inside)")
    return Path(root) / norm


def confine_output(root: str | os.PathLike, relative, what: str = "output path",
                   error: type[Exception] = ReadError) -> Path:
    """`confine` for a path we are about to write: also refused when an existing folder on the way is a symlink
    that leads outside `root`."""
    path = confine(root, relative, what, error)
    real_root = os.path.realpath(root)
    parent = os.path.realpath(path.parent)
    if os.path.commonpath([real_root, parent]) != real_root:
        raise error(f"{what} {display(relative)!r} leads outside {display(root)} through a symlink")
    return path
