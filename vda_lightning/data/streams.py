"""Streaming samples out of shards: which shards each reader takes, tar reading, skip counting.

A *reader* is one (rank, dataloader worker) pair; there are S = world_size * max(1, num_workers) of them and
reader `slot = rank * max(1, num_workers) + worker_id`.

Training ("resampled"): every reader streams forever from its own stride of an endless sequence of shard
permutations (one permutation per round, seeded by (seed, epoch, round)). So every reader always has data (also
with fewer shards than readers), nothing is split by webdataset's node splitter, the epoch is cut by
`WebLoader.with_epoch(steps)` (equal step counts on every rank), and the first ceil(n/S) shards a reader takes
cover all n shards across readers.

Validation: each sample exactly once over all readers, no padding: shard j goes to reader j % S when there are at
least S shards; otherwise every reader reads all shards and keeps samples i with i % S == slot.
"""
from __future__ import annotations

import itertools
import logging
import re
import tarfile
from collections.abc import Iterator

import numpy as np
import torch
from webdataset.gopen import gopen

from .format import SKIP_REASONS, SampleError

log = logging.getLogger("vda_lightning.data")
COUNTER_NAMES = ("ok",) + SKIP_REASONS
_NAME = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")  # webdataset's key/extension split: key ends at the first dot


def reader_slot(rank: int, world_size: int) -> tuple[int, int, int]:
    """(slot, n_slots, worker_id) of the calling process (main process = worker 0 of 1)."""
    info = torch.utils.data.get_worker_info()
    wid, nw = (0, 1) if info is None else (info.id, info.num_workers)
    return rank * nw + wid, world_size * nw, wid


class SkipCounters:
    """Per-reason counts of good and skipped samples, shared between a process and its dataloader workers.

    One row per worker (row 0: main process) so workers never race; values live in shared memory, so the main
    process (and the LightningModule, via the DataModule) sees the workers' counts while they run.
    """

    def __init__(self, max_workers: int = 64, name: str = "train"):
        self.name = name
        self.table = torch.zeros(max_workers + 1, len(COUNTER_NAMES), dtype=torch.int64).share_memory_()

    def _row(self) -> int:
        info = torch.utils.data.get_worker_info()
        return 0 if info is None else min(info.id + 1, self.table.shape[0] - 1)

    def ok(self) -> None:
        self.table[self._row(), 0] += 1

    def skip(self, reason: str, where: str, detail: str) -> None:
        col = COUNTER_NAMES.index(reason)
        row = self._row()
        self.table[row, col] += 1
        n = int(self.table[:, col].sum())
        if n <= 10 or n % 1000 == 0:  # every early skip is logged, then a sparse reminder
            log.warning("%s data: skipped %s (%s): %s [%d %s so far]", self.name, where, reason, detail, n, reason)

    def as_dict(self) -> dict[str, int]:
        totals = self.table.sum(0).tolist()
        out = dict(zip(COUNTER_NAMES, (int(v) for v in totals)))
        out["skipped"] = sum(out[r] for r in SKIP_REASONS)
        return out

    def reset(self) -> None:
        self.table.zero_()


def iter_tar_samples(url: str, counters: SkipCounters) -> Iterator[dict]:
    """Raw samples {"__key__", "__url__", ext: bytes} of one shard, grouped by key like webdataset does.

    A tar error (truncated or corrupt stream) is counted and ends this shard; the sample being read at that
    moment is still yielded so that the decoder can count what it is missing (it never passes as complete).
    """
    current: dict | None = None
    try:
        with gopen(url, "rb") as stream, tarfile.open(fileobj=stream, mode="r|*") as tar:
            for info in tar:
                m = _NAME.match(info.name)
                if not info.isreg() or m is None:
                    continue
                key, ext = m.group(1), m.group(2).lower()
                data = tar.extractfile(info).read()
                tar.members = []  # stream mode: do not keep every header in memory
                if current is not None and current["__key__"] != key:
                    yield current
                    current = None
                if current is None:
                    current = {"__key__": key, "__url__": url}
                current[ext] = data
    except (tarfile.TarError, OSError, EOFError, ValueError) as exn:
        counters.skip("tar_error", url, f"{type(exn).__name__}: {exn}; rest of the shard dropped")
    if current is not None:
        yield current


def endless_shards(urls: list[str], seed: int, epoch: int, slot: int, n_slots: int) -> Iterator[str]:
    """This reader's endless stride through concatenated per-round permutations of `urls`."""
    n = len(urls)
    for pos in itertools.count(slot, n_slots):
        rnd, i = divmod(pos, n)
        perm = np.random.default_rng([seed, epoch, rnd]).permutation(n)
        yield urls[perm[i]]


def ordered_assignment(urls: list[str], slot: int, n_slots: int) -> tuple[list[str], int | None]:
    """(shards this reader reads, sample stride filter or None) for exactly-once validation."""
    if len(urls) >= n_slots:
        return urls[slot::n_slots], None
    return list(urls), slot


def decode_stream(raw_samples, fn, counters: SkipCounters, max_failures_in_row: int | None = None) -> Iterator[dict]:
    """Apply fn to each raw sample; failures are skipped and counted, never raised. An endless stream in which
    `max_failures_in_row` samples in a row fail stops with an error instead of spinning forever."""
    failures = 0
    for raw in raw_samples:
        where = f"{raw.get('__url__')}:{raw.get('__key__')}"
        try:
            out = fn(raw)
        except SampleError as exn:
            counters.skip(exn.reason, where, exn.detail)
        except Exception as exn:  # a stream must not die on one bad sample; the message names it
            counters.skip("other_error", where, f"{type(exn).__name__}: {exn}")
        else:
            failures = 0
            counters.ok()
            yield out
            continue
        failures += 1
        if max_failures_in_row is not None and failures >= max_failures_in_row:
            raise RuntimeError(f"{counters.name}: {failures} samples in a row failed to decode; "
                               f"counts {counters.as_dict()}")


def shuffled(items: Iterator, buffer: int, rng: np.random.Generator) -> Iterator:
    """Reservoir-style shuffle with a buffer of `buffer` items (buffer <= 1: pass through)."""
    if buffer <= 1:
        yield from items
        return
    pool = []
    for item in items:
        if len(pool) < buffer:
            pool.append(item)
            continue
        j = int(rng.integers(len(pool)))
        pool[j], item = item, pool[j]
        yield item
    rng.shuffle(pool)
    yield from pool
