"""Where vda-shard finds sequences: manifests (CSV/JSON), folder layouts, the published benchmark JSON.

Each reader returns a list of `SequenceSpec` (absolute paths, depth factor, kind, optional K / poses); clip
sampling turns sequences into clip jobs. Layouts are documented in data/README.md.

Everything here reads through the trust boundary (`vda_lightning.trust`, docs/reliability.md):
  * manifests are size-capped (VDA_MAX_JSON_BYTES) and UTF-8; a JSON manifest is checked against
    `manifest_schema()` before any value is used, a CSV manifest row by row (errors name `<file>:<row>`);
  * a path in a manifest is relative to the manifest's folder and must stay inside it (`trust.confine`): an
    absolute path or a `..` that climbs out is refused in one line, unless the user passes
    `--allow-absolute-paths` (`allow_outside=True`), because a manifest someone else wrote could otherwise copy
    any readable file of this machine into shards that are then shared;
  * K.txt / poses.txt are read by `converters.base.read_table` (size cap, `<file>:<line>` errors), .npy by
    `io.read_npy` (header checked first);
  * every `SequenceSpec.check()` refuses names that are not UTF-8 or hold control characters (they become sample
    keys and JSON in the shards) and runs the geometry checks (`converters.geometry.check_camera`: positive
    focal lengths, rotations orthonormal with det +1), naming the file and the frame.
"""
from __future__ import annotations

import csv
import functools
import io
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..io import DEPTH_EXTENSIONS, IMAGE_EXTENSIONS, list_files, natural_key, read_benchmark_index, read_npy
from ..trust import ReadError, check_name, confine, display, max_json_bytes, read_bytes, read_json, validate
from .format import DEPTH_KINDS


@dataclass
class SequenceSpec:
    dataset: str
    name: str
    frames: list[str]
    depths: list[str] | None = None
    masks: list[str] | None = None
    factor: float = 1.0                      # stored depth / factor = depth in `units`
    depth_kind: str = "metric_depth"
    units: str = "m"
    K: np.ndarray | None = None              # (3, 3), or (N, 3, 3) per frame
    poses: np.ndarray | None = None          # (N, 4, 4) camera-to-world, OpenCV axes (x right, y down, z forward)
    extra: dict = field(default_factory=dict)
    # How a depth file becomes depth in `units`: None reads it with `io.read_depth(path, factor)`; else a
    # picklable callable reader(path, frame index) -> float32 (H, W) (a dataset's own encoding, invalid = 0/NaN).
    # Its repr() enters the shard spec hash, so it must describe every parameter (a dataclass does).
    reader: Any = None
    source: str | None = None                # where the sequence is described (a manifest and its entry), for errors
    K_source: str | None = None              # the file K came from (named when K is refused)
    poses_source: str | None = None          # the file the poses came from

    def frame_label(self, i: int) -> str:
        return f"frame {i} ({display(os.path.basename(self.frames[i]))})"

    def check(self) -> SequenceSpec:
        """Lengths, shapes, names and geometry; ReadError (a ValueError) in one line naming the file and frame."""
        from .converters.geometry import check_camera

        n = len(self.frames)
        where = self.source or f"sequence {display(self.dataset)}/{display(self.name)}"
        _check_label(self.dataset, "dataset", where)
        _check_label(self.name, "sequence", where)
        if n == 0:
            raise ReadError(f"{where}: no frames")
        if self.depth_kind not in DEPTH_KINDS:
            raise ReadError(f"{where}: depth_kind {display(str(self.depth_kind))[:40]!r} is not one of "
                            f"{', '.join(DEPTH_KINDS)}")
        try:
            factor = float(self.factor)
        except (TypeError, ValueError):
            factor = float("nan")
        if not (np.isfinite(factor) and factor > 0):
            raise ReadError(f"{where}: depth factor must be a positive finite number, got {self.factor!r}")
        for what, items in (("depth", self.depths), ("mask", self.masks), ("pose", self.poses)):
            if items is not None and len(items) != n:
                raise ReadError(f"{self.poses_source if what == 'pose' and self.poses_source else where}: "
                                f"{len(items)} {what} entries for {n} frames")
        if self.K is not None:
            self.K = _numbers(self.K, "K", self.K_source or where)
            if self.K.shape == (4, 4) or self.K.shape[-2:] == (4, 4):
                self.K = self.K[..., :3, :3]
            if self.K.shape not in ((3, 3), (n, 3, 3)):
                raise ReadError(f"{self.K_source or where}: K has shape {self.K.shape}, expected (3, 3) or "
                                f"({n}, 3, 3)")
        if self.poses is not None:
            self.poses = _numbers(self.poses, "poses", self.poses_source or where)
            if self.poses.size != 16 * n:
                raise ReadError(f"{self.poses_source or where}: poses have shape {self.poses.shape}, expected "
                                f"({n}, 4, 4)")
            self.poses = self.poses.reshape(n, 4, 4)
        check_camera(self.K, self.poses, self.K_source or where, self.poses_source or where, self.frame_label)
        return self


def _numbers(value, what: str, where: str) -> np.ndarray:
    """A K or poses value as a float64 array; a ragged or non-numeric nesting is one line naming where."""
    try:
        return np.asarray(value, np.float64)
    except (TypeError, ValueError):
        raise ReadError(f"{where}: {what} is not a rectangular array of numbers") from None


def _check_label(value, what: str, where: str) -> None:
    """A dataset or sequence name (it becomes sample keys and JSON in the shards): a UTF-8 string without
    control characters, else one line naming where it comes from."""
    if not isinstance(value, str):
        raise ReadError(f"{where}: {what} name must be a string, got {type(value).__name__}")
    try:
        check_name(value, what)
    except ReadError:
        raise ReadError(f"{where}: {what} name {display(value)[:80]!r} is not valid UTF-8 or holds a control "
                        "character; rename it") from None


def _files(folder: str, exts: tuple[str, ...]) -> list[str]:
    return [str(p) for p in list_files(folder, exts)]


def _load_matrix_file(path: str, columns: int | None = None) -> np.ndarray:
    """K.txt / poses.txt (whitespace-separated numbers, `columns` per line, `<file>:<line>` errors) or .npy
    (header checked before anything is allocated)."""
    if path.endswith(".npy"):
        m = read_npy(path, "camera matrix file")
        if m.dtype.kind not in "fiu":
            raise ReadError(f"{display(path)}: holds {m.dtype}, not numbers")
        m = np.asarray(m, np.float64)
        if not np.isfinite(m).all():
            raise ReadError(f"{display(path)}: holds non-finite numbers")
        return m
    from .converters.base import read_table

    return read_table(path, columns)


def _matrix_K(path: str) -> np.ndarray:
    """K.txt: 3x3 (or 4x4); K.npy also (N, 3, 3) / (N, 4, 4), one per frame."""
    K = _load_matrix_file(path)
    if K.shape[-2:] not in ((3, 3), (4, 4)) or K.ndim not in (2, 3) or (K.ndim == 3 and path.endswith(".txt")):
        raise ReadError(f"{display(path)}: K must be 3x3 (or 4x4), found {K.shape[0]} rows of {K.shape[-1]}"
                        if K.ndim == 2 else f"{display(path)}: K must be 3x3 (or 4x4), found shape {K.shape}")
    return K


def _matrix_poses(path: str) -> np.ndarray:
    P = _load_matrix_file(path, 16)
    if P.size == 0 or P.size % 16 or (P.ndim == 2 and P.shape[1] != 16) or (P.ndim == 3 and P.shape[1:] != (4, 4)):
        raise ReadError(f"{display(path)}: poses must be one row of 16 numbers per frame (or an (N, 4, 4) "
                        f"array), found shape {P.shape}")
    return P.reshape(-1, 4, 4)


def _check_sequence_folder(folder: str) -> None:
    """A folder's name becomes the sequence's name in the shards (sample keys, JSON): UTF-8, no control chars."""
    try:
        check_name(os.path.basename(folder))
    except ReadError:
        raise ReadError(f"{display(folder)}: sequence folder name is not valid UTF-8 or holds a control character "
                        "(it names the sequence in the shards); rename it") from None


def read_folders(root: str, dataset: str | None = None, factor: float = 1.0, depth_kind: str = "metric_depth",
                 units: str = "m") -> list[SequenceSpec]:
    """root/<sequence>/{frames/, depth/, [mask/], [K.txt|K.npy], [poses.txt|poses.npy]} (natural sort order).

    K.txt: 3 rows of 3 (or 4x4); poses.txt: one row of 16 numbers (row-major camera-to-world) per frame.
    A root that itself contains frames/ is one sequence. Frame and depth files are read as bytes (any name,
    UTF-8 or not, is fine); the sequence's folder name becomes its name in the shards and must be UTF-8.
    """
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise ReadError(f"{display(root)}: folder does not exist")
    seq_dirs = [root] if os.path.isdir(os.path.join(root, "frames")) else sorted(
        (os.path.join(root, d) for d in os.listdir(root) if os.path.isdir(os.path.join(root, d, "frames"))),
        key=natural_key)
    if not seq_dirs:
        raise ReadError(f"{display(root)}: no <sequence>/frames/ folders found")
    out = []
    for d in seq_dirs:
        _check_sequence_folder(d)
        frames = _files(os.path.join(d, "frames"), IMAGE_EXTENSIONS)
        depths = _files(os.path.join(d, "depth"), DEPTH_EXTENSIONS) or None
        masks = _files(os.path.join(d, "mask"), (".png",)) or None
        K = poses = K_src = poses_src = None
        for name in ("K.txt", "K.npy"):
            if os.path.isfile(os.path.join(d, name)):
                K_src = os.path.join(d, name)
                K = _matrix_K(K_src)
        for name in ("poses.txt", "poses.npy"):
            if os.path.isfile(os.path.join(d, name)):
                poses_src = os.path.join(d, name)
                poses = _matrix_poses(poses_src)
        out.append(SequenceSpec(dataset or os.path.basename(root), os.path.basename(d), frames, depths, masks,
                                factor, depth_kind if depths else "none", units, K, poses, source=display(d),
                                K_source=display(K_src) if K_src else None,
                                poses_source=display(poses_src) if poses_src else None).check())
    return out


def _abs(base: str, p: str | None) -> str | None:
    return None if p in (None, "") else os.path.normpath(os.path.join(base, p))


def _manifest_path(base: str, p: str, what: str, allow_outside: bool) -> str:
    """A path from a manifest: inside the manifest's folder (`trust.confine`), or anywhere with allow_outside."""
    if allow_outside:
        if not isinstance(p, str) or not p or "\x00" in p:
            raise ReadError(f"{what} {display(str(p))[:80]!r} is not a non-empty path string")
        return os.path.normpath(os.path.join(base, p))
    return str(confine(base, p, what))


@functools.lru_cache(maxsize=1)
def manifest_schema():
    """The pydantic model of a JSON manifest's sequence entry (built on first use: `--help` stays fast)."""
    from typing import Annotated

    from pydantic import BaseModel, ConfigDict, Field

    finite = Annotated[float, Field(allow_inf_nan=False)]
    paths = Annotated[list[str], Field(min_length=1)]

    class ManifestSequence(BaseModel):
        model_config = ConfigDict(extra="ignore")
        dataset: str = "dataset"
        name: str | int | None = None
        sequence: str | int | None = None
        frames: paths
        depth: paths | None = None
        mask: paths | None = None
        factor: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0
        depth_kind: str | None = None
        units: str = "m"
        K: list[list[finite]] | list[list[list[finite]]] | None = None
        poses: list[list[finite]] | list[list[list[finite]]] | None = None

    return ManifestSequence


def _json_manifest(path: str, base: str, factor, depth_kind, allow_outside: bool) -> list[SequenceSpec]:
    doc = read_json(path, "manifest")
    seqs = doc.get("sequences") if isinstance(doc, dict) else doc
    if not isinstance(seqs, list):
        raise ReadError(f"{display(path)}: a JSON manifest is a list of sequences or {{\"sequences\": [...]}}")
    out = []
    for i, raw in enumerate(seqs):
        s = validate(manifest_schema(), raw, f"{display(path)}: sequence {i}")
        where = f"{display(path)}: sequence {i}"
        name = s.name if s.name is not None else s.sequence if s.sequence is not None else f"seq{i:04d}"
        files = {key: [_manifest_path(base, p, f"{where}: {key}[{j}]", allow_outside) for j, p in enumerate(v)]
                 for key, v in (("frames", s.frames), ("depth", s.depth), ("mask", s.mask)) if v}
        out.append(SequenceSpec(
            s.dataset, str(name), files["frames"], files.get("depth"), files.get("mask"), float(factor or s.factor),
            depth_kind or s.depth_kind or ("metric_depth" if s.depth else "none"), s.units, s.K, s.poses,
            source=where, K_source=where, poses_source=where).check())
    return out


def read_manifest(path: str, factor: float | None = None, depth_kind: str | None = None,
                  allow_outside: bool = False) -> list[SequenceSpec]:
    """A JSON ({"sequences": [...]}) or CSV (one row per frame) manifest; paths are relative to its folder and
    must stay inside it unless `allow_outside` (`--allow-absolute-paths`)."""
    base = os.path.dirname(os.path.abspath(path))
    if path.lower().endswith(".json"):
        return _json_manifest(path, base, factor, depth_kind, allow_outside)
    if path.lower().endswith(".csv"):
        return _read_csv_manifest(path, base, factor, depth_kind, allow_outside)
    raise ReadError(f"{display(path)}: a manifest must be .json or .csv")


def _csv_rows(path: str) -> list[tuple[int, dict]]:
    """(row number, row) of a CSV manifest read through the trust boundary (size cap, UTF-8, csv errors)."""
    raw = read_bytes(path, "manifest", max_json_bytes())
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ReadError(f"{display(path)}: not UTF-8 text (byte {e.start})") from None
    try:
        return list(enumerate(csv.DictReader(io.StringIO(text, newline="")), start=2))
    except csv.Error as e:
        raise ReadError(f"{display(path)}: not a readable CSV manifest ({' '.join(str(e).split())[:120]})") from None


def _csv_number(path: str, row_no: int, row: dict, key: str) -> float:
    value = row.get(key)
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = float("nan")
    if not np.isfinite(x):
        raise ReadError(f"{display(path)}:{row_no}: column {key!r} is {display(str(value))[:40]!r}, not a finite "
                        "number")
    return x


def _csv_pose(path: str, row_no: int, text: str) -> list[float]:
    values = text.split()
    if len(values) != 16:
        raise ReadError(f"{display(path)}:{row_no}: 'pose' holds {len(values)} numbers, expected 16 (row-major "
                        "camera-to-world)")
    return [_csv_number(path, row_no, {"pose": v}, "pose") for v in values]


def _read_csv_manifest(path, base, factor, depth_kind, allow_outside: bool = False) -> list[SequenceSpec]:
    """Columns: dataset, sequence, frame, depth, [mask], [factor], [depth_kind], [fx, fy, cx, cy], [pose]
    (pose: 16 space-separated numbers, row-major camera-to-world)."""
    groups: dict[tuple[str, str], list[tuple[int, dict]]] = {}
    for row_no, row in _csv_rows(path):
        if not row.get("frame"):
            raise ReadError(f"{display(path)}:{row_no}: the 'frame' column is empty or missing")
        if None in row:
            raise ReadError(f"{display(path)}:{row_no}: more fields than the header has columns")
        groups.setdefault((row.get("dataset") or "dataset", row.get("sequence") or "seq"), []).append((row_no, row))
    if not groups:
        raise ReadError(f"{display(path)}: no rows")
    out = []
    for (ds, name), rows in groups.items():
        where = f"{display(path)}:{rows[0][0]}"
        has_depth = all(r.get("depth") for _, r in rows)
        K = poses = None
        if all(r.get("fx") for _, r in rows):
            K = np.array([[[_csv_number(path, n, r, "fx"), 0, _csv_number(path, n, r, "cx")],
                           [0, _csv_number(path, n, r, "fy"), _csv_number(path, n, r, "cy")], [0, 0, 1]]
                          for n, r in rows])
        if all(r.get("pose") for _, r in rows):
            poses = np.array([_csv_pose(path, n, r["pose"]) for n, r in rows]).reshape(-1, 4, 4)
        files = {key: [_manifest_path(base, r[key], f"{display(path)}:{n}: {key}", allow_outside)
                       for n, r in rows] for key in ("frame", "depth", "mask") if all(r.get(key) for _, r in rows)}
        row_factor = _csv_number(path, rows[0][0], rows[0][1], "factor") if rows[0][1].get("factor") else 1.0
        out.append(SequenceSpec(
            ds, name, files["frame"], files.get("depth"), files.get("mask"), float(factor or row_factor),
            depth_kind or rows[0][1].get("depth_kind") or ("metric_depth" if has_depth else "none"),
            "m", K, poses, source=where, K_source=where, poses_source=where).check())
    return out


def read_benchmark_json(path: str, datasets: list[str] | None = None) -> list[SequenceSpec]:
    """The published benchmark index (`vda_lightning.io.read_benchmark_index`) as sequence specs, in file order;
    `datasets` keeps only those top-level keys. One depth factor per sequence."""
    out = []
    for seq in read_benchmark_index(path, datasets):
        factors = {fr.factor for fr in seq.frames}
        if len(factors) > 1:
            raise ValueError(f"{path}: sequence {seq.name} mixes depth factors {sorted(factors)}")
        frames = seq.frames
        K = [fr.K for fr in frames] if all(fr.K is not None for fr in frames) else None
        poses = [fr.pose for fr in frames] if all(fr.pose is not None for fr in frames) else None
        base = os.path.abspath(seq.root)
        out.append(SequenceSpec(seq.dataset, seq.name, [_abs(base, fr.image) for fr in frames],
                                [_abs(base, fr.gt_depth) for fr in frames], None, factors.pop() if factors else 1.0,
                                "metric_depth", "m", K, poses).check())
    return out


def clip_starts(n_frames: int, clip_len: int, stride: int, frame_step: int) -> list[int]:
    """First frame of each clip: clips of clip_len frames spaced frame_step apart, starts stride apart.
    clip_len <= 0 means the whole sequence as one clip (at frame_step)."""
    if clip_len <= 0:
        return [0]
    span = (clip_len - 1) * frame_step + 1
    return list(range(0, n_frames - span + 1, max(1, stride)))
