"""The one parser of the published benchmark index (the JSON the published `benchmark/dataset_extract/*.py`
write and `benchmark/eval/eval.py` reads; `vda-prepare-benchmark` writes the same layout):

    {"<dataset>": [{"<sequence>": [{"image": ..., "gt_depth": ..., "factor": ...[, "K": 4x4, "pose": 4x4]},
                                   ...]}, ...]}

Paths are relative to the JSON's folder; frames keep their listed order, sequences their order in the file.
The evaluation (sorted by name, `io.benchmarks.read_sequences`) and `vda-shard benchmark`
(`data.manifests.read_benchmark_json`) are thin views of `read_benchmark_index`.

The index is read through the trust boundary (`vda_lightning.trust`, docs/reliability.md) before any value is
used: `trust.read_json` (a regular file, at most VDA_MAX_JSON_BYTES, standard JSON without NaN/Infinity tokens),
then every frame against `frame_schema()` (image and gt_depth path strings, factor a finite number > 0, K a 3x3 or
4x4 matrix of finite numbers with positive focal lengths, pose a 4x4 matrix of finite numbers), and every path
`trust.confine`-d to the JSON's folder: an absolute path or a `..` that climbs out is refused in one line naming
the JSON and the frame, so nothing an index says makes `vda eval` read, or write predictions, outside its folders.
Paths come back normalised (`a/./b/../c.png` -> `a/c.png`): a later `..` can then never pass through a symlink.
Names (sequence names, paths) must be valid UTF-8 without control characters: they end up in output names,
results JSON and one-line messages.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..trust import check_name, confine, display, read_json, validate
from .errors import ReadError

REQUIRED_KEYS = ("image", "gt_depth", "factor")
POSE_KEYS = ("K", "pose")


class BenchmarkError(ReadError):
    """A benchmark that cannot be read; the message names the file and the cause."""


@dataclass
class Frame:
    image: str                       # relative to the sequence's root, normalised, inside it
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


def _intrinsics(matrix: list[list[float]]) -> list[list[float]]:
    n = len(matrix)
    if n not in (3, 4) or any(len(row) != n for row in matrix):
        raise ValueError(f"K must be 3x3 or 4x4, got rows of {[len(row) for row in matrix][:6]}")
    if not (matrix[0][0] > 0 and matrix[1][1] > 0):
        raise ValueError(f"K's focal lengths must be positive, got fx {matrix[0][0]}, fy {matrix[1][1]}")
    return matrix


@functools.lru_cache(maxsize=1)
def frame_schema():
    """The pydantic model of one frame entry (built on first use: pydantic stays out of `vda eval --help`)."""
    from typing import Annotated

    from pydantic import AfterValidator, BaseModel, Field

    finite = Annotated[float, Field(allow_inf_nan=False)]
    row4 = Annotated[list[finite], Field(min_length=4, max_length=4)]

    class FrameEntry(BaseModel):
        image: str
        gt_depth: str
        factor: Annotated[float, Field(gt=0, allow_inf_nan=False)]
        K: Annotated[list[Annotated[list[finite], Field(max_length=4)]], Field(max_length=4),
                     AfterValidator(_intrinsics)] | None = None
        pose: Annotated[list[row4], Field(min_length=4, max_length=4)] | None = None

    return FrameEntry


def _inside(root: Path, value: str, where: str, key: str) -> str:
    """`value` (a path from the index) normalised, after it is confined to `root` and its name checked."""
    confined = confine(root, value, f"{where}: {key}", BenchmarkError)
    try:
        check_name(value, key)
    except ReadError as e:
        raise BenchmarkError(f"{where}: {e}") from None
    return confined.relative_to(root).as_posix()


def _frame(path: Path, name: str, i: int, entry, need_pose: bool) -> Frame:
    where = f"{display(path)}: sequence {name!r} frame {i}"
    if not isinstance(entry, dict):
        raise BenchmarkError(f"{where} is not an object (got {type(entry).__name__})")
    wanted = REQUIRED_KEYS + (POSE_KEYS if need_pose else ())
    missing = [k for k in wanted if entry.get(k) is None]
    if missing:
        raise BenchmarkError(f"{display(path)}: sequence {name!r} frame {i} lacks {', '.join(missing)}"
                             + (" (needed for TAE)" if need_pose else ""))
    checked = validate(frame_schema(), entry, where, BenchmarkError)
    root = path.parent
    return Frame(_inside(root, checked.image, where, "image"), _inside(root, checked.gt_depth, where, "gt_depth"),
                 checked.factor, checked.K, checked.pose)


def _checked_name(path: Path, kind: str, name: str) -> str:
    try:
        return check_name(name, kind)
    except ReadError as e:
        raise BenchmarkError(f"{display(path)}: {e}") from None


def _datasets(path: Path, data, datasets: list[str] | None) -> list[str]:
    wanted = " or ".join(repr(d) for d in datasets or ())
    layout = f"expected a top-level key {wanted or '<dataset>'} holding a list of sequences"
    if not isinstance(data, dict):
        raise BenchmarkError(f"{display(path)}: {layout} (got a JSON {type(data).__name__})")
    keys = [d for d in datasets if d in data] if datasets else list(data)
    if datasets and not keys:
        raise BenchmarkError(f"{display(path)}: {layout}")
    for key in keys:
        _checked_name(path, "dataset", key)
        if not isinstance(data[key], list):
            raise BenchmarkError(f"{display(path)}: expected a top-level key {key!r} holding a list of sequences")
    return keys


def read_benchmark_index(path: str | os.PathLike, datasets: list[str] | None = None,
                         need_pose: bool = False) -> list[Sequence]:
    """Every sequence of the index (of the top-level keys in `datasets`, when given), in file order.

    `need_pose`: every frame must carry K and pose (the TAE). Errors (`BenchmarkError`) are one line naming the
    file (and the sequence and frame) and what is wrong: missing file, invalid JSON, wrong layout or types, a
    frame without its keys, a path that leaves the JSON's folder, duplicate names.
    """
    path = Path(path)
    if not os.path.lexists(path):
        raise BenchmarkError(f"{display(path)}: benchmark index not found")
    try:
        data = read_json(path, "benchmark index", error=BenchmarkError)
    except BenchmarkError as e:
        if "Infinity is not a JSON number" not in str(e):
            raise
        raise BenchmarkError(f"{e}; ScanNet's untracked frames were written so by the published extractor and older "
                             "vda prepare-benchmark: re-run vda prepare-benchmark (it writes them as null)") from None
    keys = _datasets(path, data, datasets)
    sequences = []
    for dataset in keys:
        names = set()
        for item in data[dataset]:
            if not isinstance(item, dict):
                raise BenchmarkError(f"{display(path)}: {dataset!r} lists {type(item).__name__}, not "
                                     "{sequence: [frames]}")
            for name, entries in item.items():
                _checked_name(path, "sequence", name)
                if name in names:
                    raise BenchmarkError(f"{display(path)}: duplicate sequence names ({dataset}/{name})")
                names.add(name)
                if not isinstance(entries, list):
                    raise BenchmarkError(f"{display(path)}: sequence {name!r} is not a list of frames")
                frames = [_frame(path, name, i, e, need_pose) for i, e in enumerate(entries)]
                sequences.append(Sequence(dataset, name, path.parent, path, frames))
    if not sequences:
        wanted = " or ".join(repr(d) for d in datasets or ())
        raise BenchmarkError(f"{display(path)}: no sequences" + (f" under key {wanted}" if wanted else ""))
    return sequences
