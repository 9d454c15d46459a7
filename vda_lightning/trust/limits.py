"""How much one input may make us allocate: sizes are read from headers and checked against these caps before any
buffer is sized from them. Each cap can be raised (or lowered) for a run with an environment variable:

    VDA_MAX_PIXELS        height x width of one image, frame or depth map      default 8192 * 8192 = 67,108,864
    VDA_MAX_ARRAY_BYTES   one array read from a file (.npy, .npz member,      default 1 GiB
                          HDF5 dataset, EXR channel, .dpt, .pfm)
    VDA_MAX_JSON_BYTES    one JSON or text file (sidecars, indexes, K.txt)     default 64 MiB

An input over a cap is refused in one line that names the file, what its header claims and the variable to set.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterable

from .errors import ReadError

DEFAULTS = {"VDA_MAX_PIXELS": 8192 * 8192, "VDA_MAX_ARRAY_BYTES": 1 << 30, "VDA_MAX_JSON_BYTES": 64 << 20}


def limit(name: str) -> int:
    """The cap `name` (one of DEFAULTS), from the environment when set there (a positive integer)."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return DEFAULTS[name]
    try:
        value = int(raw)
    except ValueError:
        raise ReadError(f"{name}={raw!r}: not an integer") from None
    if value < 1:
        raise ReadError(f"{name}={raw!r}: must be >= 1")
    return value


def max_pixels() -> int:
    return limit("VDA_MAX_PIXELS")


def max_array_bytes() -> int:
    return limit("VDA_MAX_ARRAY_BYTES")


def max_json_bytes() -> int:
    return limit("VDA_MAX_JSON_BYTES")


def check_pixels(height: int, width: int, what: str, error: type[Exception] = ReadError) -> None:
    """`error` unless 1 <= height, width and height * width <= VDA_MAX_PIXELS."""
    if height < 1 or width < 1:
        raise error(f"{what}: its header says {width}x{height} pixels (empty)")
    cap = max_pixels()
    if height * width > cap:
        raise error(f"{what}: its header says {width}x{height} pixels, more than the {cap:,} allowed "
                    "(VDA_MAX_PIXELS)")


def check_array(shape: Iterable[int], itemsize: int, what: str, error: type[Exception] = ReadError) -> int:
    """The element count of an array of `shape`; `error` if a side is negative, the whole is over
    VDA_MAX_ARRAY_BYTES, or its last two sides (an image) are over VDA_MAX_PIXELS."""
    shape = tuple(int(s) for s in shape)
    if any(s < 0 for s in shape):
        raise error(f"{what}: its header claims a negative size {shape}")
    count = math.prod(shape)
    cap = max_array_bytes()
    if count * itemsize > cap:
        raise error(f"{what}: its header claims shape {shape} ({count * itemsize:,} bytes), more than the "
                    f"{cap:,} allowed (VDA_MAX_ARRAY_BYTES)")
    if len(shape) >= 2 and shape[-1] * shape[-2] > max_pixels():
        raise error(f"{what}: its header claims {shape[-1]}x{shape[-2]} pixels, more than the {max_pixels():,} "
                    "allowed (VDA_MAX_PIXELS)")
    return count
