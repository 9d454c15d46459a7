"""The kind probe's verdicts (`kind.py`), remembered by the checkpoint's sha256, so a file that records nothing is
probed once per machine rather than on every run (a vits probe is ~1.8 s of CPU, a vitl one ~16 s; hashing a
file costs ~0.3 s per 100 MB, and is done only when a verdict is wanted).

One small JSON file, `$VDA_CACHE_DIR/kind-probes.json` (default: `$XDG_CACHE_HOME/vda-lightning`, else
`~/.cache/vda-lightning`), replaced atomically on every write; it is outside input like any file (another
process or user may have written it), so it is read through `vda_lightning.trust` against its schema, and one that
does not fit is ignored (and rewritten on the next verdict), never trusted. An entry carries the probe rule it
was measured with (`RULE`): a changed rule re-probes.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import ConfigDict, Field, StringConstraints
from typing_extensions import TypedDict

from ..trust import ReadError, read_json

CACHE_NAME = "kind-probes.json"
MAX_ENTRIES = 256  # the oldest go first: a user's checkpoints, not a registry
RULE = "median-of-8-scenes/0.6"  # kind.PROBE_SEEDS and kind.PROBE_THRESHOLD: change it when they change

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class Verdict(TypedDict):
    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    rule: Annotated[str, StringConstraints(max_length=100)]
    metric: bool | None
    correlations: Annotated[list[Annotated[float, Field(ge=-1.0, le=1.0)]], Field(max_length=64)]


class CacheFile(TypedDict):
    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    verdicts: Annotated[dict[Sha256, Verdict], Field(max_length=MAX_ENTRIES)]


def cache_file() -> Path:
    root = os.environ.get("VDA_CACHE_DIR")
    if not root:
        root = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vda-lightning")
    return Path(root) / CACHE_NAME


def _verdicts() -> dict:
    path = cache_file()
    if not path.exists():
        return {}
    try:
        return dict(read_json(path, "kind probe cache", CacheFile)["verdicts"])
    except (ReadError, OSError):  # damaged or foreign: a cache, so start over rather than fail the command
        return {}


def lookup(sha256: str) -> Verdict | None:
    """The verdict measured on the file with this sha256 under the current RULE, or None."""
    found = _verdicts().get(sha256)
    return found if found is not None and found["rule"] == RULE else None


def store(sha256: str, metric: bool | None, correlations: list[float]) -> None:
    """Remember a verdict (best effort: a cache that cannot be written only costs the next run a probe)."""
    from ..io import write_json_atomic

    verdicts = _verdicts()
    verdicts.pop(sha256, None)
    verdicts[sha256] = {"rule": RULE, "metric": metric,
                        "correlations": [min(1.0, max(-1.0, float(c))) for c in correlations][:64]}
    while len(verdicts) > MAX_ENTRIES:
        verdicts.pop(next(iter(verdicts)))
    try:
        cache_file().parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(cache_file(), {"verdicts": verdicts})
    except OSError:
        pass
