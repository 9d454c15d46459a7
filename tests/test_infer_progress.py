"""`vda infer` progress (inference/progress.py): the bar moves by whole runner batches, its ETA spreads each window's
cost over that window's frames, and the writing bar names the slowest output kind. Pure counting, no model."""
from __future__ import annotations

import numpy as np

from vda_lightning.inference.pipeline import run_pipelined
from vda_lightning.inference.progress import BatchCounting, WriteClock, amortised_eta, slowest_writer
from vda_lightning.inference.windows import INFER_LEN, STRIDE, Stitcher, num_windows


def emitted_per_window(frames: int) -> list[int]:
    """Frames the published stitcher makes final after each window of a `frames`-long video (the real Stitcher)."""
    stitcher, counts = Stitcher(), []
    windows = num_windows(frames)
    for k in range(windows):
        raw = np.ones((INFER_LEN, 2, 2), np.float32)
        counts.append(len(stitcher.add_window(raw, num_frames=frames, last=k == windows - 1)))
    return counts


def test_eta_after_the_first_window_is_within_twice_the_remaining_time():
    # cost model: the encoder sees 32 new frames in window 0 and 22 in each later one; window 0 also pays a warm-up
    counts = emitted_per_window(200)
    assert counts[0] == 24 and sum(counts) == 200 and len(counts) == 10
    for warmup in (0.0, 10.0):  # in units of one frame's encoder cost
        costs = [warmup + INFER_LEN] + [STRIDE] * (len(counts) - 1)
        eta = amortised_eta(counts[0], 200, costs[0])
        remaining = sum(costs[1:])
        assert remaining / 2 <= eta <= 2 * remaining, (warmup, eta, remaining)
    # the per-frame bar it replaces: one frame shown after the whole first window, rate = 1 frame per window
    assert amortised_eta(1, 200, costs[0]) > 10 * remaining


def test_eta_is_unknown_before_the_first_batch_or_without_a_total():
    assert amortised_eta(0, 200, 37.0) is None and amortised_eta(5, None, 3.0) is None
    assert amortised_eta(200, 200, 50.0) == 0


class BatchRunner:
    """Stands in for a runner: each read is one batch of `size` frames."""

    def __init__(self, sizes):
        self.sizes = sizes

    def reads(self, frames):
        it = iter(frames)
        for n in self.sizes:
            yield [next(it) for _ in range(n)]

    def compute(self, read):
        return read

    def finish(self, result):
        return list(result)


def test_the_bar_moves_once_per_batch_after_the_sink_took_its_frames():
    sizes = [24, 22, 22, 12]
    events, sunk = [], []
    counted = BatchCounting(BatchRunner(sizes), lambda n: events.append((n, len(sunk))))
    assert run_pipelined(counted, iter(range(80)), sunk.append) == 80
    assert sunk == list(range(80))
    assert events == [(24, 24), (22, 46), (22, 68), (12, 80)]  # batch size, frames already in the sink
    events.clear()
    assert list(counted.run(range(80))) == list(range(80)) and [n for n, _ in events] == sizes  # one thread


def test_the_slowest_writer_and_its_share():
    assert slowest_writer({}) == "" and slowest_writer({"npz": 0.0}) == ""
    assert slowest_writer({"npz": 1.0, "vis": 3.0}) == "slowest: vis 75%"
    ticks = iter([0.0, 1.0, 1.0, 5.0, 5.0, 6.0])
    clock = WriteClock(lambda: next(ticks))
    for kind in ("npz", "png16", "npz"):
        with clock.timing(kind):
            pass
    assert clock.seconds == {"npz": 2.0, "png16": 4.0} and clock.postfix() == "slowest: png16 67%"
