"""Progress of `vda infer` that tells the truth: counted per runner batch (a window's frames arrive together) with
an ETA averaged over the whole run, and a writing bar that names the slowest output kind.

Why: the offline runner yields nothing until its first 32-frame window is through the model (`windows.py`), then
24 frames at once, then 22 per window. A bar updated per frame with tqdm's default smoothed rate showed one frame
after the first window's cost, so its ETA was that cost times every remaining frame (43 minutes for a 70-frame
clip), and stayed there until the next window. Updating once per batch and using the run's average rate
(`smoothing=0`) spreads each window's cost over the frames it produced.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

__all__ = ["BatchCounting", "WriteClock", "amortised_eta", "frame_bar", "slowest_writer"]


def amortised_eta(done: int, total: int | None, elapsed: float) -> float | None:
    """Seconds left at the run's average rate (what a `smoothing=0` tqdm bar shows); None before the first
    batch or when the total is unknown."""
    if total is None or done <= 0:
        return None
    return max(total - done, 0) * elapsed / done


def frame_bar(total: int | None, desc: str, enabled: bool):
    """A tqdm bar in frames whose ETA is `amortised_eta` (the average rate since the bar began)."""
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", desc=desc, dynamic_ncols=True, disable=not enabled, smoothing=0)


class BatchCounting:
    """The runner's three stages, with `on_batch(n)` called once each batch of `finish` has been consumed (after
    the sink has taken its last frame), so a progress bar moves by whole windows."""

    def __init__(self, runner, on_batch: Callable[[int], None]):
        self.runner, self.on_batch = runner, on_batch

    def __getattr__(self, name):
        return getattr(self.runner, name)

    def reads(self, frames: Iterable):
        return self.runner.reads(frames)

    def compute(self, read):
        return self.runner.compute(read)

    def finish(self, result) -> Iterator:
        maps = self.runner.finish(result)
        yield from maps
        self.on_batch(len(maps))

    def run(self, frames: Iterable) -> Iterator:
        """As the runner's `run` (a fresh stream for a streaming runner), batch by batch."""
        reset = getattr(self.runner, "reset", None)
        if reset is not None:
            reset()
        for read in self.reads(frames):
            yield from self.finish(self.compute(read))


def slowest_writer(seconds: dict[str, float]) -> str:
    """'slowest: vis 62%' — the output kind that took the largest share of the writing time so far."""
    spent = sum(seconds.values())
    if spent <= 0:
        return ""
    kind = max(seconds, key=seconds.get)
    return f"slowest: {kind} {100 * seconds[kind] / spent:.0f}%"


class WriteClock:
    """Seconds spent per output kind (npz, png16, vis, decode of the input for src/vis/ply, ...)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self.seconds: dict[str, float] = {}
        self._clock = clock

    @contextmanager
    def timing(self, kind: str):
        start = self._clock()
        try:
            yield
        finally:
            self.seconds[kind] = self.seconds.get(kind, 0.0) + self._clock() - start

    def postfix(self) -> str:
        return slowest_writer(self.seconds)
