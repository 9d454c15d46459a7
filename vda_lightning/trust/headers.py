"""Sizes from headers, checked before anything is allocated, and the decoders that run only after that check.

Images: PNG (IHDR) and JPEG (SOF) headers are parsed here; BMP, WebP, TIFF and the rest by Pillow's lazy open,
which reads the header only. Arrays: the `.npy` header (also inside `.npz` members, whose stored length must match
it), HDF5 dataset shapes, the EXR data window. Every size goes through `limits` (VDA_MAX_PIXELS,
VDA_MAX_ARRAY_BYTES) and every claimed length is compared with the bytes that are really there, so a 74-byte PNG
that says 100000 x 100000, or a `.npy` whose header claims 149 GiB, is one line and no allocation.
"""
from __future__ import annotations

import io
import os
import struct
import warnings
import zipfile

import numpy as np

from . import limits
from .errors import ReadError
from .paths import check_name, display, read_bytes, regular_file

_SOF = (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)


def _jpeg_size(buf: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 4 <= len(buf):
        if buf[i] != 0xFF:
            return None
        marker = buf[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD9)):  # markers without a length
            i += 2
            continue
        length = struct.unpack(">H", buf[i + 2:i + 4])[0]
        if marker in _SOF:
            if i + 9 > len(buf):
                return None
            h, w = struct.unpack(">HH", buf[i + 5:i + 9])
            return h, w
        i += 2 + length
    return None


def image_size(buf: bytes) -> tuple[int, int] | None:
    """(height, width) from a PNG's IHDR or a JPEG's SOF header without decoding; None if neither is found."""
    if buf[:8] == b"\x89PNG\r\n\x1a\n":
        if len(buf) >= 24 and buf[12:16] == b"IHDR":
            w, h = struct.unpack(">II", buf[16:24])
            return h, w
        return None
    if buf[:2] == b"\xff\xd8":
        return _jpeg_size(buf)
    return None


def any_image_size(buf: bytes) -> tuple[int, int] | None:
    """`image_size`, else what Pillow reads from the header of any format it knows (BMP, WebP, TIFF, ...)."""
    size = image_size(buf)
    if size is not None or buf[:8] == b"\x89PNG\r\n\x1a\n" or buf[:2] == b"\xff\xd8":
        return size
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's own bomb warning: our cap decides
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                with Image.open(io.BytesIO(buf)) as im:
                    w, h = im.size
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    except Exception:  # not an image Pillow knows, or a broken header
        return None
    return int(h), int(w)


def check_image_bytes(buf: bytes, what: str, error: type[Exception] = ReadError) -> tuple[int, int]:
    """(height, width) of an encoded image after its header passes VDA_MAX_PIXELS; `error` if no header."""
    size = any_image_size(buf)
    if size is None:
        raise error(f"{what}: unreadable image (no PNG, JPEG, BMP, WebP or TIFF header)")
    limits.check_pixels(size[0], size[1], what, error)
    return size


def decode_image(buf: bytes, flags: int | None = None, what: str = "image",
                 error: type[Exception] = ReadError) -> np.ndarray:
    """OpenCV's decode of an encoded image (`cv2.IMREAD_*` flags, default colour BGR) after `check_image_bytes`."""
    import cv2

    check_image_bytes(buf, what, error)
    img = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_COLOR if flags is None else flags)
    if img is None:
        raise error(f"{what}: unreadable image (corrupt or not a format OpenCV reads)")
    return img


def read_image(path: str | os.PathLike, flags: int | None = None, what: str = "image",
               error: type[Exception] = ReadError) -> np.ndarray:
    """An image file decoded as `cv2.imread(path, flags)` would, but read by Python (OpenCV never sees the name)
    and refused in one line when its header is over the caps."""
    buf = read_bytes(path, what, limits.max_array_bytes(), error)
    return decode_image(buf, flags, f"{display(path)}", error)


# -- arrays ----------------------------------------------------------------------------------------------------

def npy_header(f, what: str, error: type[Exception] = ReadError) -> tuple[tuple[int, ...], np.dtype, bool]:
    """(shape, dtype, fortran_order) of the `.npy` stream `f`, positioned at its data; no object arrays."""
    try:
        version = np.lib.format.read_magic(f)
        reader = {(1, 0): np.lib.format.read_array_header_1_0}.get(version, np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = reader(f, max_header_size=10000)
    except Exception as e:
        raise error(f"{what}: not a readable .npy header ({' '.join(str(e).split())[:120]})") from None
    if dtype.hasobject:
        raise error(f"{what}: .npy holds Python objects (pickles are not read)")
    return tuple(int(s) for s in shape), dtype, bool(fortran)


def _npy_from_stream(f, data_bytes: int, what: str, error) -> np.ndarray:
    shape, dtype, fortran = npy_header(f, what, error)
    count = limits.check_array(shape, dtype.itemsize, what, error)
    have = data_bytes - f.tell()
    if have != count * dtype.itemsize:
        raise error(f"{what}: .npy holds {have:,} data bytes, its header says {count * dtype.itemsize:,} "
                    f"(shape {shape}, {dtype})")
    data = f.read(count * dtype.itemsize)
    return np.frombuffer(data, dtype, count).reshape(shape, order="F" if fortran else "C")


def load_npy(source: str | os.PathLike | bytes, what: str | None = None,
             error: type[Exception] = ReadError) -> np.ndarray:
    """A `.npy` file (or its bytes) after its header is checked against the caps and the bytes really there."""
    if isinstance(source, bytes):
        return _npy_from_stream(io.BytesIO(source), len(source), what or ".npy data", error)
    what = what or display(source)
    size = regular_file(source, what, error=error)
    with open(source, "rb") as f:
        return _npy_from_stream(f, size, what, error)


def load_npz(path: str | os.PathLike, what: str | None = None,
             error: type[Exception] = ReadError) -> dict[str, np.ndarray]:
    """Every array of an `.npz` file, each member's header checked against its stored length first."""
    what = what or display(path)
    regular_file(path, what, error=error)
    out = {}
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                with z.open(info) as member:
                    head = member.read(min(info.file_size, 16384))
                    f = io.BytesIO(head)
                    shape, dtype, _ = npy_header(f, f"{what} member {name!r}", error)
                    count = limits.check_array(shape, dtype.itemsize, f"{what} member {name!r}", error)
                    if info.file_size - f.tell() != count * dtype.itemsize:
                        raise error(f"{what}: member {name!r} stores {info.file_size - f.tell():,} data bytes, its "
                                    f"header says {count * dtype.itemsize:,}")
                    rest = member.read()
                out[name] = _npy_from_stream(io.BytesIO(head + rest), info.file_size, f"{what} member {name!r}",
                                             error)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as e:
        if isinstance(e, error):
            raise
        raise error(f"{what}: not a readable .npz file ({' '.join(str(e).split())[:120]})") from None
    return out


def load_hdf5(path: str | os.PathLike, key: str, what: str | None = None,
              error: type[Exception] = ReadError) -> np.ndarray:
    """One dataset of an HDF5 file, its shape and type checked against the caps before it is read. The file is
    opened by Python and handed to h5py as a file object (libhdf5 never sees the name)."""
    import h5py

    what = what or display(path)
    regular_file(path, what, error=error)
    try:
        with open(path, "rb") as raw, h5py.File(raw, "r") as f:
            if key not in f or not isinstance(f[key], h5py.Dataset):
                raise error(f"{what}: HDF5 file has no {key!r} dataset (has {sorted(f.keys())[:10]})")
            ds = f[key]
            if ds.dtype.kind not in "fiub":
                raise error(f"{what}: HDF5 dataset {key!r} holds {ds.dtype}, not numbers")
            limits.check_array(ds.shape, ds.dtype.itemsize, f"{what} dataset {key!r}", error)
            return np.asarray(ds[()])
    except OSError as e:
        raise error(f"{what}: not a readable HDF5 file ({' '.join(str(e).split())[:120]})") from None


def exr_channels(path: str | os.PathLike, what: str | None = None,
                 error: type[Exception] = ReadError) -> dict[str, np.ndarray]:
    """The channels of an OpenEXR file ({name: (H, W) array}) after its data window passes the caps."""
    import OpenEXR

    what = what or display(path)
    regular_file(path, what, error=error)
    check_name(path, "EXR file", error)  # OpenEXR takes only a name: a str it can encode
    try:
        lo, hi = OpenEXR.File(os.fspath(path), header_only=True).header()["dataWindow"]
    except Exception as e:
        raise error(f"{what}: not a readable EXR ({' '.join(str(e).split())[:120]})") from None
    h, w = int(hi[1]) - int(lo[1]) + 1, int(hi[0]) - int(lo[0]) + 1
    limits.check_pixels(h, w, what, error)
    try:
        channels = OpenEXR.File(os.fspath(path), separate_channels=True).channels()
        return {name: np.asarray(ch.pixels) for name, ch in channels.items()}
    except Exception as e:
        raise error(f"{what}: not a readable EXR ({' '.join(str(e).split())[:120]})") from None
