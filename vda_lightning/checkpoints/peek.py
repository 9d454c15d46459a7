"""What a checkpoint says about its kind (relative or metric) and config, read without torch and without the
weights: the safetensors header's metadata, the `<file>.json` sidecar of `save_model`, the published file name.

Commands call `peek_kind` before importing torch or loading anything, so that a request the file's own record
already rules out (`vda infer --save ply` with a relative checkpoint, `--metric` against metadata that says
relative) is one line in well under a second instead of after the load. It reads the same records, with the same
schemas (`metadata.py`), and in the same order as `build.kind_from_file` does on the loaded file; the load still
decides. A Lightning checkpoint's `checkpoint["vda"]` lives inside its pickle, which only torch reads: such a
file (and any that records nothing) peeks as "none", and the probe's cached verdict (`probe_cache.py`) may then
stand in.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from ..trust import display, parse_json, regular_file
from .read import CheckpointError

# Published names (`run.py`, `metric_depth/`, Depth Anything V2's releases): the kind their weights predict.
METRIC_NAMES = ("metric_video_depth_anything_", "depth_anything_v2_metric_")
RELATIVE_NAMES = ("video_depth_anything_", "depth_anything_v2_")
MAX_HEADER = 100 * 2**20  # the safetensors format's own cap on its JSON header
SOURCES = {"argument": "the command line", "metadata": "the file's metadata", "name": "the file name",
           "probe": "a probe of its outputs", "none": "nothing (relative assumed)"}


@dataclass(frozen=True)
class KindHint:
    metric: bool | None  # None: the file does not say
    source: str          # "metadata", "name" or "none" (SOURCES)
    config: dict | None  # the stored ModelConfig dict, when the metadata holds one


def kind_from_name(path: str | os.PathLike) -> bool | None:
    """True / False for a published metric / relative file name, else None."""
    name = Path(path).name
    if name.startswith(METRIC_NAMES):
        return True
    if name.startswith(RELATIVE_NAMES):
        return False
    return None


def checked_checkpoint(path: str | os.PathLike) -> Path:
    """`path` if it names a regular file that holds weights (`sniff.py`), else the one-line CheckpointError that
    `read_checkpoint` would raise after the imports."""
    from .sniff import sniff

    path = Path(path)
    if not os.path.lexists(path):
        raise CheckpointError(f"{display(path)}: no such checkpoint file")
    regular_file(path, "checkpoint", error=CheckpointError)
    if not os.access(path, os.R_OK):
        raise CheckpointError(f"{display(path)}: checkpoint cannot be read (permission denied)")
    found = sniff(path)
    if not found.loadable:
        raise CheckpointError(found.refusal(display(path)))
    return path


def _safetensors_metadata(path: Path) -> tuple[dict, dict | None]:
    """(the header's `__metadata__`, its parsed `config` or None), both schema-checked (`metadata.py`)."""
    from . import metadata

    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        raw = f.read(min(n, MAX_HEADER))
    header = parse_json(raw, f"{display(path)}: safetensors header", error=CheckpointError, max_bytes=MAX_HEADER)
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not meta:
        return {}, None
    return metadata.safetensors_metadata(meta, path, CheckpointError)


def peek_kind(path: str | os.PathLike) -> KindHint:
    """The kind the file records, torch-free: our config (safetensors metadata, else the sidecar), the metadata's
    `metric` entry, a published file name; `KindHint(None, "none", ...)` when it says nothing readable here.
    The file must have passed `checked_checkpoint`."""
    from . import metadata
    from .sniff import sniff

    path = Path(path)
    meta: dict = {}
    saved = None
    if sniff(path).kind == "safetensors":
        meta, saved = _safetensors_metadata(path)
    sidecar = path.with_name(path.name + ".json")
    if saved is None and os.path.exists(sidecar):
        saved = metadata.config_sidecar(sidecar, CheckpointError)
    if saved is not None and "metric" in saved:
        return KindHint(bool(saved["metric"]), "metadata", saved)
    if "metric" in meta:
        return KindHint(meta["metric"].lower() == "true", "metadata", saved)
    named = kind_from_name(path)
    return KindHint(named, "none" if named is None else "name", saved)
