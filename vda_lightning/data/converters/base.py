"""What every dataset converter provides, plus the small file helpers they share.

A converter reads a dataset exactly as distributed (official archives extracted into one ROOT) and returns
`SequenceSpec`s with absolute frame/depth paths, a picklable depth reader for the dataset's own encoding
(invalid pixels -> 0 or NaN, never a sentinel value), per-frame K and camera-to-world OpenCV poses. The shard
engine (`convert.write_shards`) does the rest. Parsers only import numpy at module level (fast --help).
"""
from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ...io import natural_key
from ..manifests import SequenceSpec


@dataclass(frozen=True)
class Converter:
    name: str                      # the subcommand, also the default shard folder name (shards/<name>)
    summary: str                   # one line for `vda-shard --help`
    layout: str                    # two or three lines for `vda-shard <name> --help`: the expected ROOT layout
    add_arguments: Callable[[argparse.ArgumentParser], None]
    read_sequences: Callable[[argparse.Namespace], list[SequenceSpec]]
    unit_hint: str | None = None   # the flag that changes the depth units, named when a range is implausible
    defaults: dict = field(default_factory=dict)  # parser defaults (e.g. image samples for Hypersim)

    @property
    def default_out(self) -> str:
        return os.path.join("shards", self.name)


def require_dir(path: str, what: str) -> str:
    if not os.path.isdir(path):
        raise ValueError(f"{path}: {what} folder does not exist")
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


def read_table(path: str, columns: int, skip_header: bool = False) -> np.ndarray:
    """A whitespace-separated numeric text table with exactly `columns` columns (float64, one row per line)."""
    if not os.path.isfile(path):
        raise ValueError(f"{path}: file does not exist")
    try:
        rows = np.loadtxt(path, dtype=np.float64, ndmin=2, skiprows=1 if skip_header else 0)
    except ValueError as exn:
        raise ValueError(f"{path}: not a numeric table ({exn})") from None
    if rows.size == 0 or rows.shape[1] != columns:
        raise ValueError(f"{path}: expected {columns} numbers per line, found {rows.shape[1] if rows.size else 0}")
    if not np.isfinite(rows).all():
        raise ValueError(f"{path}: holds non-finite numbers")
    return rows


def image_size(path: str) -> tuple[int, int]:
    """(height, width) of an image file."""
    import cv2

    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"{path}: not a readable image")
    return int(img.shape[0]), int(img.shape[1])


def keep(name: str, wanted: list[str] | None) -> bool:
    return not wanted or name in wanted
