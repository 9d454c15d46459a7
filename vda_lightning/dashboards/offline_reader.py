"""Read an offline wandb run (`run-<id>.wandb`) back without a server.

wandb 0.31 keeps an offline run only as its transaction log (no summary/history JSON until `wandb sync`), and ships
no Python reader for it. The log is a LevelDB-style record log holding ``wandb_internal_pb2.Record`` protobufs:
a 7-byte file header (":W&B", magic 0xBEE1, version), then 32 KiB blocks of chunks, each chunk
``crc32 (4) | length (2, LE) | type (1)`` + payload; types FULL=1, FIRST=2, MIDDLE=3, LAST=4 and a block tail
shorter than a chunk header is zero padding. Used by the tests and handy to inspect a run on a cluster.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HEADER = b":W&B"
FILE_HEADER_LEN = 7
BLOCK = 32 * 1024
CHUNK_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def iter_payloads(data: bytes, path: str = "<bytes>") -> Iterator[bytes]:
    """Yield the complete record payloads of a wandb transaction log."""
    if data[:4] != HEADER:
        raise ValueError(f"{path}: not a wandb run log (header {data[:4]!r})")
    pos, pending = FILE_HEADER_LEN, bytearray()
    while pos + CHUNK_HEADER <= len(data):
        room = BLOCK - pos % BLOCK
        if room < CHUNK_HEADER:  # block tail padding
            pos += room
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + CHUNK_HEADER])
        if kind == 0 and length == 0:  # zero padding / preallocated tail
            pos += room
            continue
        payload = data[pos + CHUNK_HEADER:pos + CHUNK_HEADER + length]
        if len(payload) < length:
            break  # a run still being written: the last record is incomplete
        pos += CHUNK_HEADER + length
        if kind == FULL:
            yield bytes(payload)
        elif kind == FIRST:
            pending = bytearray(payload)
        elif kind == MIDDLE:
            pending += payload
        elif kind == LAST:
            yield bytes(pending + payload)
            pending = bytearray()
        else:
            raise ValueError(f"{path}: corrupt chunk type {kind} at byte {pos}")


@dataclass
class OfflineRun:
    """What a dashboard would show: config, history rows, summary, and the run's files folder."""
    run_dir: Path
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    artifacts: list[tuple[str, str]] = field(default_factory=list)  # (name, type)
    complete: bool = False  # the run's exit record was read (wandb.finish() or process exit completed)

    def scalar_keys(self) -> set[str]:
        return {k for row in self.history for k, v in row.items() if isinstance(v, (int, float))}

    def media(self, key: str) -> list[dict[str, Any]]:
        """Logged media/table entries under ``key`` (dicts with ``_type`` and ``path``)."""
        return [row[key] for row in self.history if isinstance(row.get(key), dict) and "_type" in row[key]]


def _put(target: dict, item) -> None:
    """Store one history/summary/config item; media come as nested keys (``pic`` → ``_type``, ``path``...)."""
    keys = [item.key] if item.key else list(item.nested_key)
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = json.loads(item.value_json)


def read_offline_run(run_dir: str | Path, wait: float = 0.0) -> OfflineRun:
    """Parse ``<run_dir>/run-*.wandb`` into an ``OfflineRun``.

    wandb's writer process may still be flushing for a moment after ``wandb.finish()`` returns (seen under CPU
    load), so ``wait`` > 0 re-reads until the exit record is there or that many seconds have passed.
    """
    deadline = time.monotonic() + wait
    while True:
        run = _read_once(Path(run_dir))
        if run.complete or time.monotonic() >= deadline:
            return run
        time.sleep(0.2)


def _read_once(run_dir: Path) -> OfflineRun:
    from wandb.proto import wandb_internal_pb2 as pb

    logs = sorted(run_dir.glob("run-*.wandb"))
    if not logs:
        raise FileNotFoundError(f"{run_dir}: no run-*.wandb file (is this an offline-run-* folder?)")
    run = OfflineRun(run_dir=run_dir)
    for payload in iter_payloads(logs[0].read_bytes(), str(logs[0])):
        record = pb.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                _put(row, item)
            run.history.append(row)
        elif kind == "summary":
            for item in record.summary.update:
                _put(run.summary, item)
        elif kind in ("config", "run"):
            # the initial config rides on the run record, later updates on config records
            for item in (record.config.update if kind == "config" else record.run.config.update):
                _put(run.config, item)
        elif kind == "exit":
            run.complete = True
        elif kind == "artifact":
            run.artifacts.append((record.artifact.name, record.artifact.type))
    explicit, run.summary = run.summary, {}
    for row in run.history:  # the summary is the last value of each key unless set explicitly
        run.summary.update(row)
    run.summary.update(explicit)
    return run


def latest_offline_run(wandb_dir: str | Path) -> Path:
    """The newest ``offline-run-*`` folder under ``<save_dir>/wandb``."""
    runs = sorted(Path(wandb_dir).glob("offline-run-*"))
    if not runs:
        raise FileNotFoundError(f"{wandb_dir}: no offline-run-* folder")
    return runs[-1]
