"""Streaming samples out of shards: which shards each reader takes, tar reading, skip counting.

A *reader* is one (rank, dataloader worker) pair; there are S = world_size * max(1, num_workers) of them and
reader `slot = rank * max(1, num_workers) + worker_id`.

Training ("resampled"): every reader streams forever from its own stride of an endless sequence of shard
permutations (one permutation per round, seeded by (seed, epoch, round)). So every reader always has data (also
with fewer shards than readers), nothing is split by webdataset's node splitter, the epoch is cut at
`epoch_length` steps (equal step counts on every rank), and the first ceil(n/S) shards a reader takes cover all
n shards across readers. A reader's position (`SourceReader.state`: shards started, samples taken from the
current shard, the identities of the buffered samples) is small and restorable: that is how a resumed run
continues the very sample stream it interrupted. A saved position comes from a checkpoint, a file: it is checked
against `SourceState` and the configured shards (`check_source_state`) before any reader restores it, so that it can
never make a reader open a shard, or a `pipe:` command, that the config does not name.

Validation: each sample exactly once over all readers, no padding: shard j goes to reader j % S when there are at
least S shards; otherwise every reader reads all shards and keeps samples i with i % S == slot.
"""
from __future__ import annotations

import logging
import re
import tarfile
from collections.abc import Iterator
from typing import Annotated, Literal

import numpy as np
import torch
from annotated_types import Ge, Le, Len
from pydantic import ConfigDict
from typing_extensions import TypedDict  # pydantic needs this one's TypedDict before Python 3.12
from webdataset.gopen import gopen

from .. import trust
from .format import SKIP_REASONS, SampleError

log = logging.getLogger("vda_lightning.data")
COUNTER_NAMES = ("ok",) + SKIP_REASONS
_NAME = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")  # webdataset's key/extension split: key ends at the first dot


MAX_COUNT = 2**62      # any saved counter (shards started, samples taken, steps) lies below
MAX_NAME = 65536       # characters of a saved shard URL or sample key
Count = Annotated[int, Ge(0), Le(MAX_COUNT)]
SavedText = Annotated[str, Len(1, MAX_NAME)]
STRICT = ConfigDict(extra="forbid")


class DataStateError(trust.ReadError):
    """A saved loader position (from a checkpoint) that is malformed or names a shard the config does not: one line
    naming the checkpoint and the place in the state; `vda fit` exits 2 and trains nothing."""


class CursorState(TypedDict):
    """`ShardCursor.state()`."""

    __pydantic_config__ = STRICT
    started: Count
    url: SavedText | None
    offset: Count
    open: bool
    empty: Count


class SourceState(TypedDict):
    """`SourceReader.state()`: the cursor, the (shard, key) of each buffered sample, failure and sample counts."""

    __pydantic_config__ = STRICT
    cursor: CursorState
    buffer: list[Annotated[list[SavedText], Len(2, 2)]]
    failures: Count
    taken: dict[Literal[COUNTER_NAMES], Count]


def check_source_state(state: dict, urls: list[str], buffer: int, what: str) -> None:
    """A schema-checked `SourceState` against the source it is to restore: the cursor's shard and every buffered
    sample's shard must be among this source's configured `urls` (`trust.check_url_from_file`), an open cursor
    names its shard, and the buffer holds no more than `buffer` samples. `what` names the checkpoint and the place.
    """
    allowed = frozenset(urls)
    cursor = state["cursor"]
    if cursor["open"] and cursor["url"] is None:
        raise DataStateError(f"{what}.cursor: an open shard without a url")
    if cursor["url"] is not None:
        if cursor["started"] < 1:
            raise DataStateError(f"{what}.cursor: a url with 0 shards started")
        trust.check_url_from_file(cursor["url"], allowed, f"{what}.cursor.url", error=DataStateError)
    capacity = buffer if buffer > 1 else 0
    if len(state["buffer"]) > capacity:
        raise DataStateError(f"{what}.buffer: {len(state['buffer'])} buffered samples, the shuffle buffer holds "
                             f"{capacity}")
    for i, (url, _key) in enumerate(state["buffer"]):
        trust.check_url_from_file(url, allowed, f"{what}.buffer.{i}", error=DataStateError)


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


def indexed_samples(url: str) -> int | None:
    """The sample count the shard's index (`NAME.index.json` beside a local tar) states, or None."""
    from .shards import _is_remote, read_index

    if _is_remote(url):
        return None
    try:
        return int((read_index(url) or {})["num_samples"])
    except (KeyError, TypeError, ValueError):
        return None


def iter_tar_samples(url: str, counters: SkipCounters) -> Iterator[dict]:
    """Raw samples {"__key__", "__url__", ext: bytes} of one shard, grouped by key like webdataset does.

    A tar error (truncated or corrupt stream) is counted and ends this shard; the sample being read at that
    moment is still yielded so that the decoder can count what it is missing (it never passes as complete).
    A tar that ends cleanly but holds fewer samples than its index lists (cut exactly at a member boundary) is
    counted as a `tar_error` too, with the shortfall in the log line.
    """
    current: dict | None = None
    seen, failed = 0, False
    expected = indexed_samples(url)
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
                    seen += 1
                current[ext] = data
    except (tarfile.TarError, OSError, EOFError, ValueError) as exn:
        failed = True
        of = f" after {seen} of {expected} indexed samples" if expected is not None else ""
        counters.skip("tar_error", url, f"{type(exn).__name__}: {exn}; rest of the shard dropped{of}")
    if current is not None:
        yield current
    if not failed and expected is not None and seen < expected:
        counters.skip("tar_error", url, f"the tar ends after {seen} of the {expected} samples its index lists "
                                        f"({expected - seen} lost: truncated at a member boundary?)")


def shard_for(urls: list[str], seed: int, epoch: int, slot: int, n_slots: int, k: int) -> str:
    """The k-th shard this reader takes: its stride through concatenated per-round permutations of `urls`."""
    rnd, i = divmod(slot + k * n_slots, len(urls))
    return urls[np.random.default_rng([seed, epoch, rnd]).permutation(len(urls))[i]]


class _Quiet:
    """Counters that count nothing: re-reading a shard to restore a position must not count its samples twice."""

    name = "restore"

    def skip(self, *args) -> None:
        pass


class ShardCursor:
    """One reader's endless walk through its shards, with a position that can be saved and restored.

    The position is (shards started, raw samples taken from the current one): restoring re-opens that shard and
    skips the samples already taken, so the next raw sample is the one the uninterrupted reader would take.
    """

    def __init__(self, urls: list[str], seed: int, epoch: int, slot: int, n_slots: int, counters):
        self.urls, self.seed, self.epoch, self.slot, self.n_slots = urls, seed, epoch, slot, n_slots
        self.counters = counters
        self.started = 0      # shards opened so far
        self.url: str | None = None
        self.offset = 0       # raw samples taken from `url`
        self.empty = 0        # shards in a row that gave no sample
        self._it: Iterator[dict] | None = None

    def next_raw(self) -> dict:
        while True:
            if self._it is None:
                self.url = shard_for(self.urls, self.seed, self.epoch, self.slot, self.n_slots, self.started)
                self.started, self.offset = self.started + 1, 0
                self._it = iter_tar_samples(self.url, self.counters)
            raw = next(self._it, None)
            if raw is not None:
                self.offset += 1
                return raw
            self._it = None  # a reader whose shards never yield anything must fail, not spin
            self.empty = 0 if self.offset else self.empty + 1
            if self.empty > 2 * len(self.urls) + 2:
                raise RuntimeError(f"{self.counters.name}: {self.empty} shards in a row gave no sample "
                                   f"(e.g. {self.url}); counts {self.counters.as_dict()}")

    def state(self) -> dict:
        return {"started": self.started, "url": self.url, "offset": self.offset, "open": self._it is not None,
                "empty": self.empty}

    def restore(self, state: dict) -> None:
        """Continue from `state`, already checked by `check_source_state` (the url is re-checked here: a reader
        never opens a shard that is not one of its own)."""
        if state["url"] is not None:
            trust.check_url_from_file(state["url"], frozenset(self.urls), "saved cursor", error=DataStateError)
        self.started, self.url = int(state["started"]), state["url"]
        self.offset, self.empty = int(state["offset"]), int(state["empty"])
        self._it = None
        if state["open"]:
            self._it = iter_tar_samples(self.url, _Quiet())
            for _ in range(self.offset):
                if next(self._it, None) is None:
                    log.warning("data resume: %s holds fewer than the %d samples read before the checkpoint; "
                                "the stream continues with the next shard (not the uninterrupted order)",
                                self.url, self.offset)
                    self._it = None
                    break


class ShuffleBuffer:
    """Reservoir-style shuffle over raw samples (size <= 1: pass through), restorable from sample identities.

    Saved state is the (shard, key) of each buffered sample, not its bytes; restoring reads them back.
    """

    def __init__(self, size: int):
        self.size = size
        self.pool: list[dict] = []

    def next(self, cursor: ShardCursor, rng: np.random.Generator) -> dict:
        if self.size <= 1:
            return cursor.next_raw()
        while len(self.pool) < self.size:
            self.pool.append(cursor.next_raw())
        item = cursor.next_raw()
        j = int(rng.integers(len(self.pool)))
        self.pool[j], item = item, self.pool[j]
        return item

    def state(self) -> list[list[str]]:
        return [[raw["__url__"], raw["__key__"]] for raw in self.pool]

    def restore(self, ids: list[list[str]], urls: list[str]) -> None:
        """Read the buffered samples `ids` back from their shards, each of which must be one of `urls`."""
        wanted: dict[str, set[str]] = {}
        for url, key in ids:
            trust.check_url_from_file(url, frozenset(urls), "saved shuffle buffer", error=DataStateError)
            wanted.setdefault(url, set()).add(key)
        found = {}
        for url, keys in wanted.items():
            for raw in iter_tar_samples(url, _Quiet()):
                if raw["__key__"] in keys:
                    found[(url, raw["__key__"])] = raw
        missing = [f"{u}:{k}" for u, k in ids if (u, k) not in found]
        if missing:
            log.warning("data resume: %d buffered samples are no longer in their shards (e.g. %s); the order "
                        "after the resume differs from the uninterrupted run", len(missing), missing[0])
        self.pool = [found[(u, k)] for u, k in ids if (u, k) in found]


class SourceReader:
    """Decoded samples of one source for one reader: cursor -> shuffle buffer -> decode (bad samples skipped and
    counted). `state()` / `restore()` capture everything but the random generator, which the caller owns."""

    def __init__(self, urls: list[str], seed: int, epoch: int, slot: int, n_slots: int, buffer: int, counters,
                 decode, max_failures_in_row: int = 1000):
        self.cursor = ShardCursor(urls, seed, epoch, slot, n_slots, counters)
        self.buffer = ShuffleBuffer(buffer)
        self.counters, self.decode, self.max_failures = counters, decode, max_failures_in_row
        self.failures = 0
        self.taken = {name: 0 for name in COUNTER_NAMES}  # good / skipped samples this reader consumed

    def next_sample(self, rng: np.random.Generator) -> dict:
        while True:
            raw = self.buffer.next(self.cursor, rng)
            where = f"{raw.get('__url__')}:{raw.get('__key__')}"
            try:
                out = self.decode(raw, rng)
            except SampleError as exn:
                reason = exn.reason
                self.counters.skip(reason, where, exn.detail)
            except Exception as exn:  # a stream must not die on one bad sample; the message names it
                reason = "other_error"
                self.counters.skip(reason, where, f"{type(exn).__name__}: {exn}")
            else:
                self.failures = 0
                self.taken["ok"] += 1
                self.counters.ok()
                return out
            self.taken[reason] += 1
            self.failures += 1
            if self.failures >= self.max_failures:
                raise RuntimeError(f"{self.counters.name}: {self.failures} samples in a row failed to decode; "
                                   f"counts {self.counters.as_dict()}")

    def state(self) -> dict:
        return {"cursor": self.cursor.state(), "buffer": self.buffer.state(), "failures": self.failures,
                "taken": dict(self.taken)}

    def restore(self, state: dict) -> None:
        self.cursor.restore(state["cursor"])
        self.buffer.restore(state["buffer"], self.cursor.urls)
        self.failures = int(state["failures"])
        self.taken.update(state["taken"])


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
