"""Depth readers for the datasets' own encodings: picklable (they run in writer processes), described by their
repr (it enters the shard spec hash), returning float32 depth in metres (or disparity) with invalid pixels as 0.
Called as reader(path, frame index in the sequence); the index selects per-frame constants."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...io import read_depth, read_float16_png, read_hdf5_array
from .geometry import disparity_to_depth, intrinsics, ray_distance_to_z


def _clean(depth: np.ndarray, bad: np.ndarray | None = None) -> np.ndarray:
    d = np.asarray(depth, np.float64)
    ok = np.isfinite(d) & (d > 0)
    if bad is not None:
        ok &= ~bad
    return np.where(ok, d, 0.0).astype(np.float32)


@dataclass(frozen=True)
class ScaledPNGDepth:
    """16-bit PNG, depth = stored / per_metre; `invalid_values` (e.g. the 65535 sky of Virtual KITTI 2) and 0 are
    invalid."""

    per_metre: float
    invalid_values: tuple[int, ...] = ()

    def __call__(self, path: str, index: int) -> np.ndarray:
        raw = read_depth(path, 1.0).astype(np.float64)
        bad = np.isin(raw, np.asarray(self.invalid_values, np.float64)) if self.invalid_values else None
        return _clean(raw / self.per_metre, bad)


@dataclass(frozen=True)
class FarLimitedDepth:
    """Float depth in metres (.npy etc.); values at or beyond `far` are sky (TartanAir's sky sphere) -> invalid."""

    far: float

    def __call__(self, path: str, index: int) -> np.ndarray:
        d = read_depth(path, 1.0)
        return _clean(d, d >= self.far)


@dataclass(frozen=True)
class DisparityDepth:
    """A disparity map (EXR/PFM, via io.read_depth) -> depth = focal_baseline / disparity; with focal_baseline None the
    disparity itself (relative_disparity). Non-positive or non-finite disparity is invalid."""

    focal_baseline: float | None

    def __call__(self, path: str, index: int) -> np.ndarray:
        disp = read_depth(path, 1.0)
        if self.focal_baseline is None:
            return _clean(disp)
        return disparity_to_depth(disp, self.focal_baseline)


@dataclass(frozen=True)
class Dsp5Depth:
    """Spring `.dsp5`: HDF5 dataset 'disparity' at twice the frame resolution, in pixels of the frame; every
    `step`-th sample (rows and columns from 0, as the Spring/MapAnything/CUT3R loaders do) is the frame's
    disparity; depth = fx * baseline / disparity with this frame's fx. NaN (and 0) are invalid."""

    focal_baseline: tuple[float, ...]
    step: int = 2

    def __call__(self, path: str, index: int) -> np.ndarray:
        disp = read_hdf5_array(path, "disparity")
        if disp.ndim != 2:
            raise ValueError(f"{path}: 'disparity' has shape {disp.shape}, expected (H, W)")
        return disparity_to_depth(disp[:: self.step, :: self.step], self.focal_baseline[index])


@dataclass(frozen=True)
class Float16PNGDepth:
    """Dynamic Replica: float16 bits in a 16-bit PNG, metres, times the annotation's per-frame scale_adjustment;
    depth below `min_depth` is invalid (the published loader's depth_eps 1e-5)."""

    scale: tuple[float, ...]
    min_depth: float = 1e-5

    def __call__(self, path: str, index: int) -> np.ndarray:
        d = read_float16_png(path).astype(np.float64) * self.scale[index]
        return _clean(d, d < self.min_depth)


@dataclass(frozen=True)
class RayDistanceDepth:
    """Hypersim `depth_meters.hdf5`: distance to the optical centre in metres (HDF5 dataset 'dataset', float16),
    turned into planar z with this camera's K; NaN (no surface) is invalid."""

    fx: float
    fy: float
    cx: float
    cy: float

    def __call__(self, path: str, index: int) -> np.ndarray:
        dist = read_hdf5_array(path, "dataset")
        if dist.ndim != 2:
            raise ValueError(f"{path}: 'dataset' has shape {dist.shape}, expected (H, W)")
        return _clean(ray_distance_to_z(dist.astype(np.float64), intrinsics(self.fx, self.fy, self.cx, self.cy)))
