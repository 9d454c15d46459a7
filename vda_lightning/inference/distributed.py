"""Inference past one process, the pure part: who takes which input, how a finished input is recognised, how the
ranks' reports become one manifest, and the job's totals. The driver that does the file work is `job.py`.

Every rank computes the same plan from the same ordered input list and the same weights (frames for videos and
frame folders, bytes for shards), so no rank has to tell another what to do: `balanced_shares` is a deterministic
longest-first assignment (each input, heaviest first, goes to the least-loaded rank), which balances a corpus
with a few long videos by frames, not by file count.

An input is complete when its completion record (written atomically after all its outputs) names the same input,
the same input fingerprint (size and modification time), the same checkpoint sha256 and the same settings digest,
and every output it lists exists. Records and manifests hold no times, ranks or hosts, so the same job run by one
process or by eight writes the same records.
"""
from __future__ import annotations

import hashlib
import heapq
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from typing_extensions import TypedDict  # pydantic reads these as schemas; it needs this one before 3.12

RECORD_KEYS = ("input", "name", "fingerprint", "checkpoint_sha256", "settings_sha256")


class CompletionRecord(TypedDict):
    input: str
    name: str
    fingerprint: dict[str, int]
    checkpoint_sha256: str
    settings_sha256: str
    outputs: list[str]
    frames: int


class RankReport(TypedDict):
    rank: int
    world: int
    entries: list[dict]
    frames_computed: int
    seconds: float


def balanced_shares(weights: Sequence[int], world: int) -> list[list[int]]:
    """Input indices for each of `world` ranks, each share in input order. Longest first: inputs by weight
    (heaviest first, ties by index) each go to the rank with the least weight so far (ties: the lowest rank).
    A weight below 1 counts as 1 (an input of unknown length still costs something)."""
    if world < 1:
        raise ValueError(f"world size must be >= 1, got {world}")
    loads = [(0, r) for r in range(world)]
    shares: list[list[int]] = [[] for _ in range(world)]
    for i in sorted(range(len(weights)), key=lambda i: (-max(int(weights[i]), 1), i)):
        load, rank = heapq.heappop(loads)
        shares[rank].append(i)
        heapq.heappush(loads, (load + max(int(weights[i]), 1), rank))
    return [sorted(s) for s in shares]


def digest(value) -> str:
    """sha256 of a JSON value written canonically (sorted keys, no spaces): settings and plans by content."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def files_sha256(paths: Iterable[str | os.PathLike]) -> str:
    """sha256 of one file's bytes; of several (an ONNX export folder), of their names and bytes in name order."""
    paths = sorted(Path(p) for p in paths)
    h = hashlib.sha256()
    for p in paths:
        if len(paths) > 1:
            h.update(p.name.encode() + b"\0")
        with open(p, "rb") as f:  # hashed, never decoded
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def fingerprint(path: str | os.PathLike) -> dict[str, int]:
    """What says an input is still the one that was processed: a file's size and mtime; a folder's file count,
    total size and newest mtime (its direct entries). Missing: zeros (the input then fails where it is read)."""
    try:
        st = os.stat(path)
        if not os.path.isdir(path):
            return {"files": 1, "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}
        stats = [e.stat() for e in os.scandir(path) if e.is_file()]
    except OSError:
        return {"files": 0, "bytes": 0, "mtime_ns": 0}
    return {"files": len(stats), "bytes": sum(s.st_size for s in stats),
            "mtime_ns": max((s.st_mtime_ns for s in stats), default=st.st_mtime_ns)}


def record_name(name: str) -> str:
    """The file name of an input's completion record (its output name is unique in the job)."""
    return f"{name}.json"


def record_matches(record: CompletionRecord | None, expected: dict, out_dir: str | os.PathLike) -> bool:
    """Whether `record` (None: absent or unreadable) says the input with the `expected` RECORD_KEYS is complete,
    and every output it lists is still there."""
    if record is None or any(record.get(k) != expected[k] for k in RECORD_KEYS):
        return False
    return all(os.path.lexists(Path(out_dir) / o) for o in record["outputs"])


def merge_manifest(reports: Sequence[RankReport], header: dict, inputs: int) -> dict:
    """One manifest from every rank's report: `header` (command, checkpoint, settings, folders), the entries in
    input order, and the job's totals. ValueError unless each of the `inputs` indices is reported exactly once."""
    entries = sorted((e for r in reports for e in r["entries"]), key=lambda e: e["index"])
    indices = [e["index"] for e in entries]
    if indices != list(range(inputs)):
        seen = set(indices)
        missing = [i for i in range(inputs) if i not in seen]
        twice = sorted({i for i in indices if indices.count(i) > 1})
        raise ValueError(f"rank reports do not cover the inputs once each (missing {missing[:5]}, twice "
                         f"{twice[:5]})")
    rates = [r["frames_computed"] / r["seconds"] for r in reports if r["seconds"] > 0]
    totals = {"inputs": inputs,
              "complete": sum(e["status"] == "complete" for e in entries),
              "failed": sum(e["status"] == "failed" for e in entries),
              "reused": sum(bool(e.get("reused")) for e in entries),
              "frames": sum(e.get("frames", 0) for e in entries),
              "frames_computed": sum(r["frames_computed"] for r in reports),
              "frames_per_second": round(sum(rates), 3)}
    return {**header, "world_size": reports[0]["world"] if reports else 1, "totals": totals, "inputs": entries}


def job_totals(progress: Sequence[dict], frames_all: int, inputs_all: int) -> dict:
    """The job's totals from each rank's progress (frames_done, inputs_done, frames_computed, seconds)."""
    rate = sum(p["frames_computed"] / p["seconds"] for p in progress if p["seconds"] > 0)
    done = sum(p["frames_done"] for p in progress)
    left = max(frames_all - done, 0)
    return {"frames_done": done, "frames_all": frames_all, "inputs_done": sum(p["inputs_done"] for p in progress),
            "inputs_all": inputs_all, "frames_per_second": rate, "ranks": len(progress),
            "eta_seconds": (left / rate) if rate > 0 else None}


def totals_line(t: dict, world: int, unit: str = "frames") -> str:
    """One progress line of the job's totals (rank 0 prints it)."""
    eta = "?" if t["eta_seconds"] is None else _clock(t["eta_seconds"])
    return (f"job: {t['inputs_done']}/{t['inputs_all']} inputs, {t['frames_done']}/{t['frames_all']} {unit}, "
            f"{t['frames_per_second']:.2f} {unit}/s over {t['ranks']}/{world} ranks, ETA {eta}")


def share_line(rank: int, world: int, share: Sequence[int], names: Sequence[str], weights: Sequence[int],
               unit: str = "frames") -> str:
    """What one rank's log says it will do: its inputs and their weight, out of the job's."""
    shown = ", ".join(names[i] for i in share[:8]) + (f", ... ({len(share) - 8} more)" if len(share) > 8 else "")
    return (f"rank {rank}/{world}: {len(share)} of {len(names)} inputs, {sum(weights[i] for i in share)} of "
            f"{sum(weights)} {unit}" + (f": {shown}" if share else ""))


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
