"""The published key-frame windowing and stitching (`video_depth.py::infer_video_depth`,
`utils/util.py::compute_scale_and_shift`) as small pure pieces.

Window k starts at video frame 22k. Its slots 0..9 are copies of the previous window's *input* slots
[0, 12, 24..31]; unrolled, slot 0 is always frame 0, slot 1 is frame 22k-10 and slots 2..31 are frames
22k+2..22k+31 (the true 8-frame overlap, then 22 new frames). Frames past the end are copies of the last frame.
"""
from __future__ import annotations

import numpy as np

INFER_LEN = 32  # window length = training clip length
OVERLAP = 10  # leading slots taken from the previous window (2 key frames + 8 cross-faded frames)
KEYFRAMES = (0, 12, 24, 25, 26, 27, 28, 29, 30, 31)  # previous-window slots copied into slots 0..9
INTERP_LEN = 8  # frames cross-faded between consecutive windows
STRIDE = INFER_LEN - OVERLAP  # 22
ALIGN_LEN = OVERLAP - INTERP_LEN  # 2 key frames drive the scale/shift fit


def num_windows(num_frames: int) -> int:
    """ceil(L / 22): window k exists iff it starts inside the video (22k < L)."""
    if num_frames <= 0:
        raise ValueError(f"a video needs at least one frame, got {num_frames}")
    return -(-num_frames // STRIDE)


def window_frames(k: int, num_frames: int | None = None) -> list[int]:
    """Video frame index of each of the 32 slots of window k (padding clamps to the last frame).

    With num_frames None the indices are not clamped (used while the length is still unknown).
    """
    if k == 0:
        idx = list(range(INFER_LEN))
    else:
        start = STRIDE * k
        idx = [0, start - STRIDE + KEYFRAMES[1]] + [start + j for j in range(ALIGN_LEN, INFER_LEN)]
    return idx if num_frames is None else [min(i, num_frames - 1) for i in idx]


def reused_slots(k: int) -> list[int]:
    """Slots of window k whose input equals a slot of window k-1 (their encoder features are reused)."""
    return [] if k == 0 else list(range(OVERLAP))


def least_squares_scale_shift(pred: np.ndarray, target: np.ndarray) -> tuple[np.float32, np.float32]:
    """min_{s,t} sum (s*pred + t - target)^2 in float32 sums as published; det == 0 -> (1, 0)."""
    p = np.asarray(pred, dtype=np.float32)
    g = np.asarray(target, dtype=np.float32)
    a00, a01, a11 = np.sum(p * p), np.sum(p), np.float32(p.size)
    b0, b1 = np.sum(p * g), np.sum(g)
    det = a00 * a11 - a01 * a01
    if det == 0:
        return np.float32(1.0), np.float32(0.0)
    return (a11 * b0 - a01 * b1) / det, (-a01 * b0 + a00 * b1) / det


def crossfade_weights() -> list[float]:
    """New-window weight of the 8 shared frames: 0, 1/7, ..., 1 (first frame all previous window).

    Python floats on purpose: times a float32 map they keep float32 arithmetic, as published.
    """
    return [j / (INTERP_LEN - 1) for j in range(INTERP_LEN)]


class Stitcher:
    """Feeds on raw window predictions (32 maps at output resolution) and yields final frames in order.

    Holds only the two reference key-frame maps and the 8 frames still awaiting the next window's
    cross-fade, so memory is constant whatever the video's length.
    """

    def __init__(self, metric: bool = False):
        self.metric = metric
        self.windows_seen = 0
        self.emitted = 0  # next video frame index to emit
        self._ref0 = None  # window 0's raw frame-0 map (never updated)
        self._ref1 = None  # the latest window's aligned slot-12 map (frame 22k+12)
        self._pending: list[np.ndarray] = []  # aligned slots 24..31 of the latest window

    def add_window(self, raw: np.ndarray, num_frames: int | None = None, last: bool = False) -> list[np.ndarray]:
        """raw: (32, H, W) float32. num_frames: the video length once known, else None; last: no window follows.

        Returns the frames that became final, in video order, never more than num_frames in all.
        """
        raw = np.asarray(raw, dtype=np.float32)
        if raw.shape[0] != INFER_LEN:
            raise ValueError(f"a window holds {INFER_LEN} maps, got {raw.shape[0]}")
        k = self.windows_seen
        if k == 0:
            self._ref0, self._ref1 = raw[0], raw[12]
            ready = list(raw[: INFER_LEN - INTERP_LEN])
            self._pending = list(raw[INFER_LEN - INTERP_LEN :])
        else:
            if self.metric:
                s, t = np.float32(1.0), np.float32(0.0)
            else:
                s, t = least_squares_scale_shift(np.concatenate(raw[:ALIGN_LEN]), np.concatenate([self._ref0,
                                                                                                  self._ref1]))
            aligned = np.maximum(s * raw[ALIGN_LEN:] + t, np.float32(0))  # slots 2..31, clipped at zero
            w = crossfade_weights()
            ready = [(1 - w[j]) * self._pending[j] + w[j] * aligned[j] for j in range(INTERP_LEN)]
            new = aligned[INTERP_LEN:]  # slots 10..31
            ready += list(new[: INFER_LEN - OVERLAP - INTERP_LEN])
            self._pending = list(new[INFER_LEN - OVERLAP - INTERP_LEN :])
            self._ref1 = aligned[12 - ALIGN_LEN]
        self.windows_seen += 1
        if last:  # everything left is final
            ready += self._pending
            self._pending = []
        if num_frames is not None:  # the padding copies are never emitted
            ready = ready[: max(num_frames - self.emitted, 0)]
        self.emitted += len(ready)
        return ready
