"""Readers for the depth (and frame) files users bring. Every reader returns float32 (H, W) = stored / factor.

Formats: 16-bit (or 8-bit) PNG/TIFF with a factor (KITTI 256, NYU/ScanNet 1000, Bonn 5000), .npy, .npz (key
'depth' or the only array), OpenEXR (channel Z, depth, Y or R), Sintel .dpt (float32 with a 202021.25 tag),
and .pfm (IRS/SceneFlow). Any failure is a ValueError naming the file and the cause.
"""
from __future__ import annotations

import os

import cv2
import numpy as np

DEPTH_EXTENSIONS = (".png", ".tif", ".tiff", ".npy", ".npz", ".exr", ".dpt", ".pfm")
DPT_TAG = 202021.25
_EXR_CHANNELS = ("Z", "depth", "Depth", "Y", "R", "V")


def read_frame(path: str) -> np.ndarray:
    """RGB uint8 (H, W, 3)."""
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{path}: not a readable image")
    return img[:, :, ::-1].copy()


def read_mask(path: str) -> np.ndarray:
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None or img.ndim != 2:
        raise ValueError(f"{path}: not a readable single-channel mask image")
    return img > 0


def _read_dpt(path: str) -> np.ndarray:
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12:
            raise ValueError(f"{path}: .dpt file shorter than its 12-byte header")
        tag = np.frombuffer(head[:4], "<f4")[0]
        w, h = (int(v) for v in np.frombuffer(head[4:], "<i4"))
        if tag != np.float32(DPT_TAG) or not (0 < w < 100000 and 0 < h < 100000):
            raise ValueError(f"{path}: not a Sintel .dpt file (tag {tag}, size {w}x{h})")
        data = np.frombuffer(f.read(), "<f4")
    if data.size != w * h:
        raise ValueError(f"{path}: .dpt holds {data.size} values, header says {w}x{h}")
    return data.reshape(h, w)


def write_dpt(path: str, depth: np.ndarray) -> None:
    """Sintel .dpt writer (used by tests and to export)."""
    h, w = depth.shape
    with open(path, "wb") as f:
        f.write(np.float32(DPT_TAG).tobytes() + np.int32(w).tobytes() + np.int32(h).tobytes())
        f.write(depth.astype("<f4").tobytes())


def _read_pfm(path: str) -> np.ndarray:
    with open(path, "rb") as f:
        kind = f.readline().strip()
        if kind not in (b"Pf", b"PF"):
            raise ValueError(f"{path}: not a PFM file")
        w, h = (int(v) for v in f.readline().split())
        scale = float(f.readline())
        data = np.frombuffer(f.read(), "<f4" if scale < 0 else ">f4")
    ch = 3 if kind == b"PF" else 1
    if data.size != w * h * ch:
        raise ValueError(f"{path}: PFM holds {data.size} values, header says {w}x{h}x{ch}")
    return np.flipud(data.reshape(h, w, ch)[..., 0])  # PFM rows go bottom-up


def _read_exr(path: str) -> np.ndarray:
    import OpenEXR

    try:
        channels = OpenEXR.File(path).channels()
    except Exception as exn:
        raise ValueError(f"{path}: not a readable EXR ({exn})") from None
    for name in _EXR_CHANNELS:
        if name in channels:
            return np.asarray(channels[name].pixels)
    if len(channels) == 1:
        return np.asarray(next(iter(channels.values())).pixels)
    raise ValueError(f"{path}: EXR has no depth channel among {_EXR_CHANNELS} (has {sorted(channels)})")


def read_depth(path: str, factor: float = 1.0) -> np.ndarray:
    """float32 (H, W) depth = stored value / factor. Non-finite values are returned as they are."""
    if not os.path.isfile(path):
        raise ValueError(f"{path}: depth file does not exist")
    if not factor > 0:
        raise ValueError(f"{path}: depth factor must be positive, got {factor}")
    ext = os.path.splitext(path)[1].lower()
    if ext in (".png", ".tif", ".tiff"):
        raw = cv2.imread(path, cv2.IMREAD_UNCHANGED)  # keeps 16 bits (a plain imread would make 8 bits)
        if raw is None:
            raise ValueError(f"{path}: not a readable image")
        if raw.ndim != 2:
            raise ValueError(f"{path}: depth image has {raw.shape[2]} channels, expected 1")
        depth = raw
    elif ext == ".npy":
        depth = np.load(path, allow_pickle=False)
    elif ext == ".npz":
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            key = "depth" if "depth" in keys else (keys[0] if len(keys) == 1 else None)
            if key is None:
                raise ValueError(f"{path}: .npz has no 'depth' array and several others {keys}")
            depth = z[key]
    elif ext == ".exr":
        depth = _read_exr(path)
    elif ext == ".dpt":
        depth = _read_dpt(path)
    elif ext == ".pfm":
        depth = _read_pfm(path)
    else:
        raise ValueError(f"{path}: unknown depth format {ext!r} (known: {', '.join(DEPTH_EXTENSIONS)})")
    depth = np.squeeze(np.asarray(depth))
    if depth.ndim != 2:
        raise ValueError(f"{path}: depth array has shape {depth.shape}, expected (H, W)")
    return depth.astype(np.float32) / np.float32(factor)


# -- raw dataset encodings (the training-set converters in data/converters/ use these) -----------------------------

def read_float16_png(path: str) -> np.ndarray:
    """A 16-bit PNG whose bits are IEEE float16 values (Dynamic Replica depth), as float32.

    The published Dynamic Replica loader (`datasets/dynamic_stereo_datasets.py::_load_16big_png_depth`) reads the
    PNG as uint16 and reinterprets the same bits as float16; so do we.
    """
    raw = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise ValueError(f"{path}: not a readable image")
    if raw.dtype != np.uint16 or raw.ndim != 2:
        raise ValueError(f"{path}: expected a 16-bit single-channel PNG, got {raw.dtype} {raw.shape}")
    return np.ascontiguousarray(raw).view(np.float16).astype(np.float32)


def read_hdf5_array(path: str, key: str) -> np.ndarray:
    """One dataset of an HDF5 file (Spring `.dsp5` key 'disparity', Hypersim `.hdf5` key 'dataset')."""
    import h5py

    if not os.path.isfile(path):
        raise ValueError(f"{path}: file does not exist")
    try:
        with h5py.File(path, "r") as f:
            if key not in f:
                raise ValueError(f"{path}: HDF5 file has no {key!r} dataset (has {sorted(f.keys())})")
            return np.asarray(f[key][()])
    except OSError as exn:
        raise ValueError(f"{path}: not a readable HDF5 file ({exn})") from None
