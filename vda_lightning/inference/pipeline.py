"""The runners' three stages in three threads, so that the device never waits on the host's I/O.

    reader thread    frames -> window reads (decode, stack; pinned on CUDA, pre-processed on the CPU)  -> queue
    calling thread   device work: upload (non-blocking), pre-process, encoder, head, upsample, download
                     (non-blocking, into pinned memory)                                               -> queue
    finisher thread  wait for the download, stitch the window (offline mode), hand each final map to `sink`

A runner (`OfflineRunner`, `StreamingRunner`) provides the stages as `reads(frames)`, `compute(read)` and
`finish(pending)`; its plain `run(frames)` chains the same three calls in one thread, so the threaded and the
serial outputs are the same numbers (bit for bit on the CPU: the same operations on the same data in the same
order). Both queues are bounded (`prefetch`, `queue_size` items), so host memory stays bounded whatever the
video's length; order is kept by construction (one thread per stage, FIFO queues). An exception in any stage
stops the other two and is raised in the calling thread; on an interrupt (KeyboardInterrupt) or any other exit
the threads are stopped and joined before the exception continues.

`overlap_pays(device)` says when `vda infer` runs the stages in threads: always on an accelerator, and on the CPU
only when a hardware thread is left beside torch's own intra-op threads. Without one, the I/O threads only compete
with the compute for the same cores (measured in docs/gpu.md, "The threaded runner").
"""
from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator

_END = object()
_POLL_S = 0.1  # how often a blocked put/get looks at the stop flag


def overlap_pays(device) -> bool:
    """True where decoding and writing in threads can run beside the device's work: a non-CPU device, or a CPU
    with more hardware threads than torch computes with."""
    import torch

    if getattr(device, "type", str(device)) != "cpu":
        return True
    return (os.cpu_count() or 1) > torch.get_num_threads()


class _Stopped(Exception):
    """Raised inside a stage thread when the pipeline is shutting down."""


class BackgroundIterator:
    """Iterates `source` in a daemon thread into a bounded queue; iterating this object yields the same items in
    the same order, and re-raises the source's exception at the position where it happened."""

    def __init__(self, source: Iterable, maxsize: int = 1, name: str = "vda-reader"):
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, maxsize))
        self._stop = threading.Event()
        self._source = source
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)

    def start(self) -> BackgroundIterator:
        self._thread.start()
        return self

    def _put(self, item) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue
        raise _Stopped

    def _work(self) -> None:
        it = iter(self._source)
        try:
            for item in it:
                self._put((True, item))
            self._put((True, _END))
        except _Stopped:
            pass
        except BaseException as e:  # handed to the consumer, raised there
            try:
                self._put((False, e))
            except _Stopped:
                pass
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()  # a generator source releases its file handles here, in its own thread

    def __iter__(self) -> Iterator:
        while True:
            ok, item = self._queue.get()
            if not ok:
                raise item
            if item is _END:
                return
            yield item

    def close(self) -> None:
        """Stop the thread (dropping whatever it had read ahead) and wait for it."""
        self._stop.set()
        while self._thread.ident is not None and self._thread.is_alive():
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(timeout=_POLL_S)


class BackgroundConsumer:
    """Calls `fn(item)` for every `put(item)`, in order, in a daemon thread behind a bounded queue.

    `put` raises the worker's exception as soon as one happened; `close()` waits until every item is done and
    raises it too; `abort()` drops what is still queued and stops.
    """

    def __init__(self, fn: Callable, maxsize: int = 1, name: str = "vda-finisher"):
        self._fn = fn
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, maxsize))
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)

    def start(self) -> BackgroundConsumer:
        self._thread.start()
        return self

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if item is _END:
                return
            try:
                self._fn(item)
            except BaseException as e:
                self._error = e
                return

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, item) -> None:
        while True:
            self._raise_if_failed()
            if not self._thread.is_alive():
                raise RuntimeError("the finisher thread stopped")
            try:
                self._queue.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Finish every queued item, stop, and raise the worker's exception if it had one."""
        self.put(_END)
        self._thread.join()
        self._raise_if_failed()

    def abort(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join()


def max_frames_in_flight(runner, prefetch: int = 1, queue_size: int = 1) -> int:
    """Upper bound on frames read from the source but not yet handed to the sink: the read being assembled, the
    `prefetch` queued and the one being computed; the `queue_size` pending results queued and the one being
    finished; and what the runner itself holds back (the stitcher's frames awaiting the next cross-fade)."""
    return (prefetch + 2 + queue_size + 1) * runner.max_read + runner.held_back


def run_pipelined(runner, frames: Iterable, sink: Callable, *, prefetch: int = 1, queue_size: int = 1) -> int:
    """Every final depth map of `frames`, in order, handed to `sink(map)` from the finisher thread; returns the
    number of maps. `runner.run(frames)` yields the same maps in one thread."""
    count = 0

    def finish(pending) -> None:
        nonlocal count
        for depth in runner.finish(pending):
            sink(depth)
            count += 1

    # Both threads are started inside the try: an interrupt may arrive at any moment, even during a start.
    reader = BackgroundIterator(runner.reads(frames), maxsize=prefetch)
    finisher = BackgroundConsumer(finish, maxsize=queue_size)
    try:
        finisher.start()
        for read in reader.start():
            finisher.put(runner.compute(read))
        finisher.close()
    except BaseException:
        finisher.abort()
        raise
    finally:
        reader.close()
    return count
