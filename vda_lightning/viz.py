"""Visualisation helpers shared by `vda-infer` and the dashboards: colormaps, side-by-side videos,
temporal profiles. Everything returns/accepts uint8 RGB numpy images.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from .io import AtomicWrite


@lru_cache(maxsize=8)
def _lut(cmap: str) -> np.ndarray:
    """(256, 3) uint8 lookup table of a matplotlib colormap."""
    import matplotlib

    colors = matplotlib.colormaps[cmap](np.linspace(0.0, 1.0, 256))[:, :3]
    return (colors * 255).astype(np.uint8)


def depth_to_uint8(depth: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """(…, H, W) float map -> uint8 grey levels `uint8((d - vmin) / (vmax - vmin) * 255)`, in float32 arithmetic and
    truncating, exactly as the published `utils/dc_utils.py::save_video` (vmin/vmax default to the map's own range;
    values outside it are clipped, NaN shows as vmin, a constant map as 0)."""
    d = np.asarray(depth, dtype=np.float32)
    lo = np.float32(np.nanmin(d) if vmin is None else vmin)
    hi = np.float32(np.nanmax(d) if vmax is None else vmax)
    span = hi - lo if hi > lo else np.float32(1.0)
    return np.clip(np.nan_to_num((d - lo) / span * np.float32(255), nan=0.0), 0, 255).astype(np.uint8)


def colorize(depth: np.ndarray, vmin: float | None = None, vmax: float | None = None,
             cmap: str = "inferno") -> np.ndarray:
    """(…, H, W) float map -> (…, H, W, 3) uint8 RGB: `depth_to_uint8` through the colormap's 256 colours,
    `uint8(colour * 255)` — the published visualisation (`cm.get_cmap("inferno").colors`)."""
    return _lut(cmap)[depth_to_uint8(depth, vmin, vmax)]


def side_by_side(*images: np.ndarray) -> np.ndarray:
    """Concatenate RGB images of equal height left to right."""
    return np.concatenate([np.asarray(i, dtype=np.uint8) for i in images], axis=1)


def temporal_profile(depths: np.ndarray, column: int, vmin=None, vmax=None, cmap: str = "inferno") -> np.ndarray:
    """One image column followed over time: (T, H, W) -> (H, T, 3) uint8 RGB (x = time, y = image row).

    Flicker shows as vertical streaks; temporally stable depth gives horizontal bands.
    """
    d = np.asarray(depths)
    if d.ndim != 3:
        raise ValueError(f"depths must be (T, H, W), got {d.shape}")
    if not -d.shape[2] <= column < d.shape[2]:
        raise ValueError(f"column {column} outside the width {d.shape[2]}")
    return colorize(d[:, :, column].T, vmin, vmax, cmap)


class VideoWriter:
    """Streaming H.264 mp4 writer (PyAV). Frames: uint8 RGB, any size (padded to even sides for yuv420p).

    Writes to a temporary name and renames on close() (`io.AtomicWrite`), so an interrupted run leaves no
    complete-looking file. FFmpeg writes to a Python file object and never sees the name (names come from inputs;
    docs/reliability.md).
    """

    def __init__(self, path, fps: float = 30.0, crf: int = 18):
        import av

        self.path = Path(path)
        self._target = AtomicWrite(self.path)
        self._file = open(self._target.tmp, "wb")
        try:
            self._container = av.open(self._file, mode="w", format="mp4")
        except BaseException:
            self._file.close()
            self._target.abort()
            raise
        self._fps = fps
        self._crf = crf
        self._stream = None
        self.frames = 0

    def write(self, rgb: np.ndarray):
        from fractions import Fraction

        import av

        rgb = np.asarray(rgb, dtype=np.uint8)
        h, w = rgb.shape[:2]
        rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        if self._stream is None:
            rate = Fraction(self._fps).limit_denominator(1001)
            self._stream = self._container.add_stream("libx264", rate=rate)
            self._stream.width, self._stream.height = rgb.shape[1], rgb.shape[0]
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"crf": str(self._crf)}
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self):
        try:
            if self._stream is not None:
                for packet in self._stream.encode():
                    self._container.mux(packet)
            self._container.close()
            self._file.close()
        except BaseException:
            self.abort()
            raise
        self._target.commit()

    def abort(self):
        try:
            self._container.close()
        finally:
            self._file.close()
            self._target.abort()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *_):
        self.abort() if exc_type else self.close()
