"""Write shards atomically with a per-shard index, find shards from patterns, read the indexes back.

A shard `NAME.tar` is complete when `NAME.index.json` exists beside it and describes it (same byte size, and
the same `spec_hash` when the writer was given one). Both files are written atomically (`vda_lightning.io`), tar
first, so a crash never leaves a complete-looking but partial shard. A write that fails (a full disk) is one
OSError naming the shard, and its staging file is removed.

An index is read through the trust boundary (`trust.read_json`: regular file, size cap, standard JSON) and checked
against `index_schema()` before any value is used; one that fails is treated as missing (the shard is rewritten
by `vda shard`, and counted without an index by the readers), never trusted in part.
"""
from __future__ import annotations

import functools
import glob
import io
import json
import os
import tarfile
from collections import Counter

import braceexpand

from ..io import AtomicWrite, write_bytes_atomic
from ..trust import ReadError, is_remote, read_json
from .depth_stats import DepthStats
from .format import FORMAT_VERSION, ClipRecord, encode_record, sample_key


def index_path(shard: str) -> str:
    return (shard[:-4] if shard.endswith(".tar") else shard) + ".index.json"


@functools.lru_cache(maxsize=1)
def index_schema():
    """The pydantic model of `NAME.index.json` as `ShardWriter.close` writes it (extra keys are kept; the keys
    older writers did not write are optional)."""
    from typing import Annotated

    from pydantic import BaseModel, ConfigDict, Field

    count = Annotated[int, Field(ge=0)]
    finite = Annotated[float, Field(allow_inf_nan=False)]

    class DepthStatsDoc(BaseModel):
        model_config = ConfigDict(extra="allow")
        kind: str = "metric_depth"
        units: str = "m"
        pixels: count
        valid: count
        min: finite | None = None
        max: finite | None = None
        hist: dict[Annotated[str, Field(pattern=r"^-?[0-9]{1,6}$")], count] = {}

    class ShardIndex(BaseModel):
        model_config = ConfigDict(extra="allow")
        format_version: count | None = None
        shard: str | None = None
        num_samples: count
        num_frames: count | None = None
        sample_types: dict[str, count] = {}
        datasets: dict[str, count] = {}
        bytes: count
        spec_hash: str = ""
        keys: list[str] = []
        depth_stats: dict[str, DepthStatsDoc] = {}

    return ShardIndex


def read_index(shard: str) -> dict | None:
    """The shard's index (checked against `index_schema()`), or None if it is missing, unreadable or invalid."""
    path = index_path(shard)
    if not os.path.lexists(path):
        return None
    try:
        return read_json(path, "shard index", index_schema()).model_dump()
    except ReadError:
        return None


def shard_is_complete(shard: str, spec_hash: str | None = None) -> bool:
    index = read_index(shard)
    if index is None or not os.path.exists(shard) or os.path.getsize(shard) != index.get("bytes"):
        return False
    return spec_hash is None or index.get("spec_hash") == spec_hash


class ShardWriter:
    """Writes one shard. Use as a context manager; the shard appears (atomically) only on a clean exit."""

    def __init__(self, path: str, spec_hash: str = "", frame_format: str = "png", depth_encoding: str = "png16",
                 depth_scale: float | None = None, jpeg_quality: int = 95):
        self.path = path
        self.spec_hash = spec_hash
        self.encode_kw = dict(frame_format=frame_format, depth_encoding=depth_encoding,
                              depth_scale=depth_scale, jpeg_quality=jpeg_quality)
        self._target = AtomicWrite(path)
        try:
            self._tar = tarfile.open(self._target.tmp, "w", format=tarfile.USTAR_FORMAT)
        except OSError as e:
            self._target.abort()
            raise self._cannot_write(e) from None
        self.keys: list[str] = []
        self.num_frames = 0
        self.types: Counter = Counter()
        self.datasets: Counter = Counter()
        self.depth_stats: dict[str, DepthStats] = {}  # "<dataset>/<sequence>" -> what was written

    def write(self, rec: ClipRecord) -> str:
        key = rec.key or sample_key(rec.dataset, rec.sequence, len(self.keys))
        if key in self.keys or "." in key or "/" in key:
            raise ValueError(f"{self.path}: sample key {key!r} is duplicated or contains '.' or '/'")
        members = encode_record(rec, **self.encode_kw)
        for ext in ["json"] + [e for e in members if e != "json"]:  # json first: readers learn the layout early
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size, info.mtime, info.mode = len(members[ext]), 0, 0o644  # mtime 0: reproducible bytes
            try:
                self._tar.addfile(info, io.BytesIO(members[ext]))
            except OSError as e:
                raise self._cannot_write(e) from None
        self.keys.append(key)
        self.num_frames += rec.num_frames
        self.types[rec.sample_type] += 1
        self.datasets[rec.dataset] += 1
        if rec.depth is not None:
            name = f"{rec.dataset}/{rec.sequence}"
            self.depth_stats.setdefault(name, DepthStats(rec.depth_kind, rec.depth_units)).add(rec.depth, rec.mask)
        return key

    def _cannot_write(self, e: OSError, what: str = "the shard", path: str | None = None) -> OSError:
        """`e` (ENOSPC, EFBIG, EIO... raised by a write, which names no file) as an OSError naming the shard."""
        return OSError(e.errno, f"cannot write {what} ({e.strerror or e})", path or self.path)

    def close(self) -> dict:
        try:
            self._tar.close()
        except OSError as e:
            self.abort()
            raise self._cannot_write(e) from None
        self._target.commit()
        index = {"format_version": FORMAT_VERSION, "shard": os.path.basename(self.path),
                 "num_samples": len(self.keys), "num_frames": self.num_frames,
                 "sample_types": dict(self.types), "datasets": dict(self.datasets),
                 "bytes": os.path.getsize(self.path), "spec_hash": self.spec_hash, "keys": self.keys,
                 "depth_stats": {k: v.as_dict() for k, v in self.depth_stats.items()}}
        try:
            write_bytes_atomic(index_path(self.path), json.dumps(index, indent=1).encode())
        except OSError as e:  # the tar stays without an index: incomplete, a rerun rewrites it
            raise self._cannot_write(e, "the shard index", index_path(self.path)) from None
        return index

    def abort(self) -> None:
        """Drop the staging file, even when closing the tar fails again (the disk that failed is still full)."""
        try:
            self._tar.close()
        except OSError:
            pass
        finally:
            self._target.abort()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _is_remote(url: str) -> bool:
    """Whether webdataset opens `url` by running a program (`trust.is_remote`: any scheme but file:)."""
    return is_remote(url)


def expand_shards(spec: str | list[str] | None, what: str = "shards") -> list[str]:
    """Shard URLs from a brace pattern ('a-{000..009}.tar'), '::'-joined patterns, globs or a list of these.

    Local paths must exist: a pattern that matches no file is a start-up error naming the pattern.
    """
    if spec is None or spec == "" or spec == []:
        return []
    patterns = [spec] if isinstance(spec, str) else list(spec)
    urls: list[str] = []
    for pattern in patterns:
        for piece in str(pattern).split("::"):
            for url in braceexpand.braceexpand(os.path.expanduser(piece)):
                if _is_remote(url):
                    urls.append(url)
                elif any(c in url for c in "*?["):
                    urls.extend(sorted(p for p in glob.glob(url) if p.endswith(".tar")))
                elif os.path.isfile(url):
                    urls.append(url)
                elif os.path.isdir(url):
                    urls.extend(sorted(glob.glob(os.path.join(url, "*.tar"))))
                else:
                    raise FileNotFoundError(f"{what}: shard {url!r} (from pattern {pattern!r}) does not exist")
    if not urls:
        raise FileNotFoundError(f"{what}: pattern {spec!r} matches no shard files")
    return urls


def count_samples(urls: list[str]) -> int | None:
    """Total samples from the per-shard indexes, or None if any shard has no index (remote or legacy)."""
    total = 0
    for url in urls:
        index = None if _is_remote(url) else read_index(url)
        if index is None:
            return None
        total += int(index["num_samples"])
    return total
