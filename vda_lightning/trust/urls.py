"""Shard URLs: which ones start a process, and who may name those.

webdataset opens `pipe:CMD` through a shell, and `http(s)://`, `sftp://`, `gs://`, `s3://`... by running `curl`,
`gsutil` or `aws` with the URL on a shell command line. Such a URL runs a program, so it is accepted only where
the user typed it (a command line, a config file); a URL that comes from a file we read (a checkpoint's saved
loader state, a JSON, a sidecar) must be a plain local path or one of the URLs the user configured
(`check_url_from_file`).
"""
from __future__ import annotations

import re

from .errors import ReadError

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
LOCAL_SCHEMES = ("file",)


def scheme(url: str) -> str | None:
    """The URL's scheme ('pipe', 'https', ...), or None for a plain path."""
    m = _SCHEME.match(url)
    return m.group(1).lower() if m and len(m.group(1)) > 1 else None  # 'C:' style one-letter drives are paths


def is_remote(url: str) -> bool:
    """Whether opening `url` runs a program or reaches the network (anything but a plain path or file:)."""
    s = scheme(url)
    return s is not None and s not in LOCAL_SCHEMES


def check_url_from_file(url, allowed: set[str] | frozenset[str], what: str,
                        error: type[Exception] = ReadError) -> str:
    """`url` read from a file, refused unless it is one of the `allowed` URLs (those the user configured).

    A URL the user did not configure is refused even when it is a plain path: a saved position that names another
    shard (a validation shard, say) would silently train on it.
    """
    if not isinstance(url, str):
        raise error(f"{what}: shard URL must be a string, got {type(url).__name__}")
    if url not in allowed:
        kind = "a URL that runs a program" if is_remote(url) else "a shard"
        shown = url if len(url) <= 120 else url[:117] + "..."
        raise error(f"{what}: names {kind} not among the configured shards ({shown!r}); refused")
    return url
