"""Depth readers for the files users bring. `read_depth` returns (H, W) = stored value / factor.

Formats: 16-bit (or 8-bit) PNG/TIFF with a factor (KITTI 256, NYU/ScanNet 1000, Bonn 5000), .npy, .npz (key
'depth' or the only array), OpenEXR (channel Z, depth, Y or R), Sintel .dpt (float32 with a 202021.25 tag),
.pfm (IRS/SceneFlow); and two raw dataset encodings the training-set converters (`data/converters/`) use:
float16 bits in a 16-bit PNG (`read_float16_png`) and one HDF5 dataset (`read_hdf5_array`). PNGs are decoded
with `cv2.imread(path, IMREAD_UNCHANGED)` (16 bits kept), as the published evaluation (`benchmark/eval/eval.py`)
reads its ground truth. Any failure is a `ReadError` naming the file and the cause.
"""
from __future__ import annotations

import os

import numpy as np

from ..trust import check_array, display, exr_channels, load_hdf5, load_npy, load_npz, read_image, regular_file
from .errors import ReadError

DEPTH_EXTENSIONS = (".png", ".tif", ".tiff", ".npy", ".npz", ".exr", ".dpt", ".pfm")
DPT_TAG = 202021.25  # Sintel's .dpt / .cam header tag
_EXR_CHANNELS = ("Z", "depth", "Depth", "Y", "R", "V")


def read_npy(path: str | os.PathLike, what: str = "array") -> np.ndarray:
    """A `.npy` file (no pickles; header checked against the file's length and VDA_MAX_ARRAY_BYTES before anything
    is allocated); `what` names it in the error ('prediction', 'ground-truth depth', ...)."""
    if not os.path.lexists(path):
        raise ReadError(f"{display(path)}: {what} not found")
    return load_npy(path, f"{display(path)}: {what}")


def _read_dpt(path: str) -> np.ndarray:
    size = regular_file(path, "depth file")
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12:
            raise ReadError(f"{display(path)}: .dpt file shorter than its 12-byte header")
        tag = np.frombuffer(head[:4], "<f4")[0]
        w, h = (int(v) for v in np.frombuffer(head[4:], "<i4"))
        if tag != np.float32(DPT_TAG) or not (0 < w < 100000 and 0 < h < 100000):
            raise ReadError(f"{display(path)}: not a Sintel .dpt file (tag {tag}, size {w}x{h})")
        check_array((h, w), 4, display(path))
        if size - 12 != w * h * 4:
            raise ReadError(f"{display(path)}: .dpt holds {(size - 12) // 4} values, header says {w}x{h}")
        data = np.frombuffer(f.read(w * h * 4), "<f4")
    return data.reshape(h, w)


def write_dpt(path: str | os.PathLike, depth: np.ndarray) -> None:
    """Sintel .dpt writer (tests and export), atomically."""
    from .atomic import write_bytes_atomic

    h, w = depth.shape
    header = np.float32(DPT_TAG).tobytes() + np.int32(w).tobytes() + np.int32(h).tobytes()
    write_bytes_atomic(path, header + np.ascontiguousarray(depth, dtype="<f4").tobytes())


def _read_pfm(path: str) -> np.ndarray:
    size = regular_file(path, "depth file")
    with open(path, "rb") as f:
        kind = f.readline(16).strip()
        if kind not in (b"Pf", b"PF"):
            raise ReadError(f"{display(path)}: not a PFM file")
        try:
            w, h = (int(v) for v in f.readline(64).split())
            scale = float(f.readline(64))
        except ValueError:
            raise ReadError(f"{display(path)}: PFM header is not 'width height' then 'scale'") from None
        ch = 3 if kind == b"PF" else 1
        if w < 1 or h < 1:
            raise ReadError(f"{display(path)}: PFM header says {w}x{h}")
        check_array((h, w, ch), 4, display(path))
        if size - f.tell() != w * h * ch * 4:
            raise ReadError(f"{display(path)}: PFM holds {(size - f.tell()) // 4} values, header says {w}x{h}x{ch}")
        data = np.frombuffer(f.read(w * h * ch * 4), "<f4" if scale < 0 else ">f4")
    return np.flipud(data.reshape(h, w, ch)[..., 0])  # PFM rows go bottom-up


def _read_exr(path: str) -> np.ndarray:
    channels = exr_channels(path)
    for name in _EXR_CHANNELS:
        if name in channels:
            return channels[name]
    if len(channels) == 1:
        return next(iter(channels.values()))
    raise ReadError(f"{display(path)}: EXR has no depth channel among {_EXR_CHANNELS} (has {sorted(channels)})")


def _read_image_depth(path: str) -> np.ndarray:
    import cv2

    raw = read_image(path, cv2.IMREAD_UNCHANGED, "depth image")  # keeps 16 bits (a plain imread makes 8 bits)
    if raw.ndim != 2:
        raise ReadError(f"{display(path)}: depth image has {raw.shape[2]} channels, expected 1")
    return raw


def _read_npz(path: str) -> np.ndarray:
    arrays = load_npz(path)
    keys = list(arrays)
    key = "depth" if "depth" in keys else (keys[0] if len(keys) == 1 else None)
    if key is None:
        raise ReadError(f"{display(path)}: .npz has no 'depth' array and several others {keys}")
    return arrays[key]


_READERS = {".png": _read_image_depth, ".tif": _read_image_depth, ".tiff": _read_image_depth,
            ".npz": _read_npz, ".exr": _read_exr, ".dpt": _read_dpt, ".pfm": _read_pfm}


def read_depth(path: str | os.PathLike, factor: float = 1.0, dtype=np.float32, what: str = "depth",
               min_int_bits: int = 0) -> np.ndarray:
    """(H, W) depth = stored value / factor, computed in `dtype` (float32; the benchmark protocol uses float64).

    Non-finite values are returned as they are. `what` names the file's role in the errors. `min_int_bits`: an
    integer image with fewer bits per value is refused (benchmark ground truth is 16-bit: an 8-bit PNG, e.g. one
    re-saved by an image tool, would silently cap and quantise the depth).
    """
    path = os.fspath(path)
    if not os.path.lexists(path):
        raise ReadError(f"{display(path)}: {what} file does not exist")
    if not factor > 0:
        raise ReadError(f"{display(path)}: depth factor must be positive, got {factor}")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy":
        depth = read_npy(path, what)
    elif ext in _READERS:
        depth = _READERS[ext](path)
    else:
        raise ReadError(f"{display(path)}: unknown depth format {ext!r} (known: {', '.join(DEPTH_EXTENSIONS)})")
    depth = np.squeeze(np.asarray(depth))
    if depth.dtype.kind in "ui" and depth.dtype.itemsize * 8 < min_int_bits:
        raise ReadError(f"{display(path)}: {what} is a {depth.dtype.itemsize * 8}-bit image, {min_int_bits}-bit "
                        f"expected (value / {factor:g} = metres: {depth.dtype.itemsize * 8} bits cap it at "
                        f"{np.iinfo(depth.dtype).max / factor:.3g} m); re-extract it from the dataset")
    if depth.ndim != 2:
        raise ReadError(f"{display(path)}: {what} array has shape {depth.shape}, expected (H, W)")
    return depth.astype(dtype) / np.dtype(dtype).type(factor)


# -- raw dataset encodings (the training-set converters in data/converters/ use these) -----------------------------

def read_float16_png(path: str | os.PathLike) -> np.ndarray:
    """A 16-bit PNG whose bits are IEEE float16 values (Dynamic Replica depth), as float32.

    The published Dynamic Replica loader (`datasets/dynamic_stereo_datasets.py::_load_16big_png_depth`) reads the
    PNG as uint16 and reinterprets the same bits as float16; so do we.
    """
    import cv2

    raw = read_image(path, cv2.IMREAD_UNCHANGED, "depth image")
    if raw.dtype != np.uint16 or raw.ndim != 2:
        raise ReadError(f"{display(path)}: expected a 16-bit single-channel PNG, got {raw.dtype} {raw.shape}")
    return np.ascontiguousarray(raw).view(np.float16).astype(np.float32)


def read_hdf5_array(path: str | os.PathLike, key: str) -> np.ndarray:
    """One dataset of an HDF5 file (Spring `.dsp5` key 'disparity', Hypersim `.hdf5` key 'dataset'), its shape
    checked against the caps before it is read."""
    return load_hdf5(path, key)
