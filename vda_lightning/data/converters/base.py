"""What every dataset converter provides, plus the small file helpers they share.

A converter reads a dataset exactly as distributed (official archives extracted into one ROOT) and returns
`SequenceSpec`s with absolute frame/depth paths, a picklable depth reader for the dataset's own encoding
(invalid pixels -> 0 or NaN, never a sentinel value), per-frame K and camera-to-world OpenCV poses. The shard
engine (`convert.write_shards`) does the rest. Parsers only import numpy at module level (fast --help).

Every file a converter reads goes through the trust boundary (`vda_lightning.trust`): text tables through
`read_table` (size cap, UTF-8, `<file>:<line>` errors), image sizes from headers only (`image_size`), images,
depth, `.npy`/`.npz`/HDF5 through `vda_lightning.io` / `trust`; what a converter returns passes
`SequenceSpec.check()` (names, shapes, the geometry checks of `geometry.py`) and, before anything is written,
the depth-unit check against the converter's `plausible_depth` (`convert.check_depth_units`).
"""
from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ...io import natural_key
from ...trust import (
    ReadError,
    any_image_size,
    check_pixels,
    display,
    max_array_bytes,
    max_json_bytes,
    read_bytes,
    regular_file,
)
from ..depth_stats import PLAUSIBLE_METRIC_DEPTH
from ..manifests import SequenceSpec

IMAGE_HEAD_BYTES = 1 << 16  # enough for a PNG IHDR, and a JPEG SOF after typical EXIF/ICC segments


@dataclass(frozen=True)
class Converter:
    name: str                      # the subcommand, also the default shard folder name (shards/<name>)
    summary: str                   # one line for `vda-shard --help`
    layout: str                    # two or three lines for `vda-shard <name> --help`: the expected ROOT layout
    add_arguments: Callable[[argparse.ArgumentParser], None]
    read_sequences: Callable[[argparse.Namespace], list[SequenceSpec]]
    unit_hint: str | None = None   # the flag that changes the depth units, named when a range is implausible
    plausible_depth: tuple[float, float] = PLAUSIBLE_METRIC_DEPTH  # metres: the median of valid depth must lie
    # in it (each converter states its dataset's range and where it comes from; --allow-depth-range overrides)
    defaults: dict = field(default_factory=dict)  # parser defaults (e.g. image samples for Hypersim)

    @property
    def default_out(self) -> str:
        return os.path.join("shards", self.name)


def require_dir(path: str, what: str) -> str:
    if not os.path.isdir(path):
        raise ReadError(f"{display(path)}: {what} folder does not exist")
    return path


def numbered_files(folder: str, pattern: str) -> dict[int, str]:
    """{frame number: path} of the files in `folder` whose name matches `pattern` (one group: the number)."""
    rx = re.compile(pattern)
    out = {}
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            m = rx.fullmatch(name)
            if m:
                out[int(m.group(1))] = os.path.join(folder, name)
    return dict(sorted(out.items()))


def subdirs(folder: str) -> list[str]:
    if not os.path.isdir(folder):
        return []
    return sorted((d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d))), key=natural_key)


def read_text(path: str, what: str = "text file") -> str:
    """A small text file (at most VDA_MAX_JSON_BYTES, a regular file, UTF-8) through the trust boundary."""
    raw = read_bytes(path, what, max_json_bytes())
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ReadError(f"{display(path)}: {what} is not UTF-8 text (byte {e.start})") from None


def read_table(path: str, columns: int | None, skip_header: bool = False) -> np.ndarray:
    """A whitespace-separated numeric text table (float64, one row per line; `#` starts a comment) with exactly
    `columns` numbers per line (None: as many as the first line). Every problem is one line `<file>:<line>: ...`:
    a word that is not a number, a non-finite number, a line with another count."""
    return read_table_lines(path, columns, skip_header)[0]


def read_table_lines(path: str, columns: int | None, skip_header: bool = False) -> tuple[np.ndarray, list[int]]:
    """`read_table` and the line number of each row (for errors about a row's values: `<file>:<line>`)."""
    text = read_text(path, "text table")
    rows: list[list[float]] = []
    lines: list[int] = []
    header_skipped = not skip_header
    for lineno, line in enumerate(text.splitlines(), start=1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if not header_skipped:
            header_skipped = True
            continue
        want = columns if columns is not None else (len(rows[0]) if rows else len(words))
        if len(words) != want:
            raise ReadError(f"{display(path)}:{lineno}: expected {want} numbers per line, found {len(words)}")
        rows.append([_number(path, lineno, w) for w in words])
        lines.append(lineno)
    if not rows:
        raise ReadError(f"{display(path)}: no rows of numbers")
    return np.array(rows, np.float64), lines


def _number(path: str, lineno: int, word: str) -> float:
    try:
        x = float(word)
    except ValueError:
        raise ReadError(f"{display(path)}:{lineno}: {display(word)[:40]!r} is not a number") from None
    if not np.isfinite(x):
        raise ReadError(f"{display(path)}:{lineno}: {word[:40]!r} is not a finite number")
    return x


def image_size(path: str) -> tuple[int, int]:
    """(height, width) of an image file from its header only (`trust.any_image_size` on its first bytes, the whole
    file if the header lies further in), checked against VDA_MAX_PIXELS. Nothing is decoded, OpenCV never sees
    the name."""
    head = read_head(path, IMAGE_HEAD_BYTES)
    size = any_image_size(head)
    if size is None and len(head) == IMAGE_HEAD_BYTES:
        size = any_image_size(read_bytes(path, "image", max_array_bytes()))
    if size is None:
        raise ReadError(f"{display(path)}: not a readable image (no PNG, JPEG, BMP, WebP or TIFF header)")
    check_pixels(size[0], size[1], display(path))
    return int(size[0]), int(size[1])


def read_head(path: str, n: int) -> bytes:
    """The first `n` bytes of a regular file."""
    regular_file(path, "image")
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError as e:
        raise ReadError(f"{display(path)}: image cannot be read ({e.strerror or e})") from None


def positive_option(value: float, flag: str) -> float:
    """A numeric option that scales depth or K (a baseline, a focal length, a full scale) must be finite and > 0:
    0, a negative value or nan would write zero, negative or NaN depth and K without a word."""
    if not (np.isfinite(value) and value > 0):
        raise ReadError(f"{flag} {value:g}: must be a positive finite number")
    return float(value)


def keep(name: str, wanted: list[str] | None) -> bool:
    return not wanted or name in wanted
