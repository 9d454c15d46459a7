"""The one parser of the published benchmark index (the JSON the published `benchmark/dataset_extract/*.py`
write and `benchmark/eval/eval.py` reads; `vda-prepare-benchmark` writes the same layout):

    {"<dataset>": [{"<sequence>": [{"image": ..., "gt_depth": ..., "factor": ...[, "K": 4x4, "pose": 4x4]},
                                   ...]}, ...]}

Paths are relative to the JSON's folder; frames keep their listed order, sequences their order in the file.
The evaluation (sorted by name, `evaluation.benchmarks.read_sequences`) and `vda-shard benchmark`
(`data.manifests.read_benchmark_json`) are thin views of `read_benchmark_index`.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ReadError

REQUIRED_KEYS = ("image", "gt_depth", "factor")
POSE_KEYS = ("K", "pose")


class BenchmarkError(ReadError):
    """A benchmark that cannot be read; the message names the file and the cause."""


@dataclass
class Frame:
    image: str                       # relative to the sequence's root
    gt_depth: str
    factor: float                    # stored depth / factor = metres
    K: list | None = None
    pose: list | None = None         # camera-to-world 4x4


@dataclass
class Sequence:
    dataset: str
    name: str
    root: Path                       # the JSON's folder (<benchmark root>/<dataset>)
    json_path: Path
    frames: list[Frame] = field(default_factory=list)


def _frame(path: Path, name: str, i: int, entry, need_pose: bool) -> Frame:
    if not isinstance(entry, dict):
        raise BenchmarkError(f"{path}: sequence {name!r} frame {i} is not an object")
    missing = [k for k in REQUIRED_KEYS + (POSE_KEYS if need_pose else ()) if k not in entry]
    if missing:
        raise BenchmarkError(f"{path}: sequence {name!r} frame {i} lacks {', '.join(missing)}"
                             + (" (needed for TAE)" if need_pose else ""))
    try:
        factor = float(entry["factor"])
    except (TypeError, ValueError):
        raise BenchmarkError(f"{path}: sequence {name!r} frame {i}: factor {entry['factor']!r} is not a number"
                             ) from None
    return Frame(entry["image"], entry["gt_depth"], factor, entry.get("K"), entry.get("pose"))


def read_benchmark_index(path: str | os.PathLike, datasets: list[str] | None = None,
                         need_pose: bool = False) -> list[Sequence]:
    """Every sequence of the index (of the top-level keys in `datasets`, when given), in file order.

    `need_pose`: every frame must carry K and pose (the TAE). Errors (`BenchmarkError`) name the file and say
    what is wrong: missing file, invalid JSON, wrong layout, a frame without its keys, duplicate names.
    """
    path = Path(path)
    if not path.is_file():
        raise BenchmarkError(f"{path}: benchmark index not found")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BenchmarkError(f"{path}: not valid JSON ({e})") from None
    keys = list(data) if isinstance(data, dict) and not datasets else [d for d in datasets or () if d in data]
    wanted = " or ".join(repr(d) for d in datasets or ())
    if not isinstance(data, dict) or (datasets and not keys):
        raise BenchmarkError(f"{path}: expected a top-level key {wanted or '<dataset>'} holding a list of sequences")
    sequences = []
    for dataset in keys:
        if not isinstance(data[dataset], list):
            raise BenchmarkError(f"{path}: expected a top-level key {dataset!r} holding a list of sequences")
        names = set()
        for item in data[dataset]:
            if not isinstance(item, dict):
                raise BenchmarkError(f"{path}: {dataset!r} lists {type(item).__name__}, not {{sequence: [frames]}}")
            for name, entries in item.items():
                if name in names:
                    raise BenchmarkError(f"{path}: duplicate sequence names ({dataset}/{name})")
                names.add(name)
                if not isinstance(entries, list):
                    raise BenchmarkError(f"{path}: sequence {name!r} is not a list of frames")
                frames = [_frame(path, name, i, e, need_pose) for i, e in enumerate(entries)]
                sequences.append(Sequence(dataset, name, path.parent, path, frames))
    if not sequences:
        raise BenchmarkError(f"{path}: no sequences" + (f" under key {wanted}" if wanted else ""))
    return sequences
