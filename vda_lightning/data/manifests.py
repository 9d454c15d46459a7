"""Where vda-shard finds sequences: manifests (CSV/JSON), folder layouts, the published benchmark JSON.

Each reader returns a list of `SequenceSpec` (absolute paths, depth factor, kind, optional K / poses); clip
sampling turns sequences into clip jobs. Layouts are documented in data/README.md.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..io import DEPTH_EXTENSIONS, IMAGE_EXTENSIONS, list_files, natural_key, read_benchmark_index, read_npy


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

    def check(self) -> SequenceSpec:
        n = len(self.frames)
        where = f"sequence {self.dataset}/{self.name}"
        if n == 0:
            raise ValueError(f"{where}: no frames")
        for what, items in (("depth", self.depths), ("mask", self.masks), ("pose", self.poses)):
            if items is not None and len(items) != n:
                raise ValueError(f"{where}: {len(items)} {what} entries for {n} frames")
        if self.K is not None:
            self.K = np.asarray(self.K, np.float64)
            if self.K.shape == (4, 4) or self.K.shape[-2:] == (4, 4):
                self.K = self.K[..., :3, :3]
            if self.K.shape not in ((3, 3), (n, 3, 3)):
                raise ValueError(f"{where}: K has shape {self.K.shape}, expected (3, 3) or ({n}, 3, 3)")
        if self.poses is not None:
            self.poses = np.asarray(self.poses, np.float64).reshape(n, 4, 4)
        return self


def _files(folder: str, exts: tuple[str, ...]) -> list[str]:
    return [str(p) for p in list_files(folder, exts)]


def _load_matrix_file(path: str) -> np.ndarray:
    if path.endswith(".npy"):
        return read_npy(path, "camera matrix file")
    return np.loadtxt(path, dtype=np.float64, ndmin=2)


def read_folders(root: str, dataset: str | None = None, factor: float = 1.0, depth_kind: str = "metric_depth",
                 units: str = "m") -> list[SequenceSpec]:
    """root/<sequence>/{frames/, depth/, [mask/], [K.txt|K.npy], [poses.txt|poses.npy]} (natural sort order).

    K.txt: 3 rows of 3 (or 4x4); poses.txt: one row of 16 numbers (row-major camera-to-world) per frame.
    A root that itself contains frames/ is one sequence.
    """
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise ValueError(f"{root}: folder does not exist")
    seq_dirs = [root] if os.path.isdir(os.path.join(root, "frames")) else sorted(
        (os.path.join(root, d) for d in os.listdir(root) if os.path.isdir(os.path.join(root, d, "frames"))),
        key=natural_key)
    if not seq_dirs:
        raise ValueError(f"{root}: no <sequence>/frames/ folders found")
    out = []
    for d in seq_dirs:
        frames = _files(os.path.join(d, "frames"), IMAGE_EXTENSIONS)
        depths = _files(os.path.join(d, "depth"), DEPTH_EXTENSIONS) or None
        masks = _files(os.path.join(d, "mask"), (".png",)) or None
        K = poses = None
        for name in ("K.txt", "K.npy"):
            if os.path.isfile(os.path.join(d, name)):
                K = _load_matrix_file(os.path.join(d, name))
        for name in ("poses.txt", "poses.npy"):
            if os.path.isfile(os.path.join(d, name)):
                poses = _load_matrix_file(os.path.join(d, name)).reshape(-1, 4, 4)
        out.append(SequenceSpec(dataset or os.path.basename(root), os.path.basename(d), frames, depths, masks,
                                factor, depth_kind if depths else "none", units, K, poses).check())
    return out


def _abs(base: str, p: str | None) -> str | None:
    return None if p in (None, "") else os.path.normpath(os.path.join(base, p))


def read_manifest(path: str, factor: float | None = None, depth_kind: str | None = None) -> list[SequenceSpec]:
    """A JSON ({"sequences": [...]}) or CSV (one row per frame) manifest; relative paths are from its folder."""
    base = os.path.dirname(os.path.abspath(path))
    if path.lower().endswith(".json"):
        with open(path) as f:
            doc = json.load(f)
        seqs = doc["sequences"] if isinstance(doc, dict) else doc
        out = []
        for i, s in enumerate(seqs):
            try:
                out.append(SequenceSpec(
                    s.get("dataset", "dataset"), str(s.get("name", s.get("sequence", f"seq{i:04d}"))),
                    [_abs(base, p) for p in s["frames"]],
                    [_abs(base, p) for p in s["depth"]] if s.get("depth") else None,
                    [_abs(base, p) for p in s["mask"]] if s.get("mask") else None,
                    float(factor or s.get("factor", 1.0)),
                    depth_kind or s.get("depth_kind", "metric_depth" if s.get("depth") else "none"),
                    s.get("units", "m"), s.get("K"), s.get("poses")).check())
            except KeyError as exn:
                raise ValueError(f"{path}: sequence {i} lacks the key {exn}") from None
        return out
    if path.lower().endswith(".csv"):
        return _read_csv_manifest(path, base, factor, depth_kind)
    raise ValueError(f"{path}: a manifest must be .json or .csv")


def _read_csv_manifest(path, base, factor, depth_kind) -> list[SequenceSpec]:
    """Columns: dataset, sequence, frame, depth, [mask], [factor], [depth_kind], [fx, fy, cx, cy], [pose]
    (pose: 16 space-separated numbers, row-major camera-to-world)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    with open(path, newline="") as f:
        for row_no, row in enumerate(csv.DictReader(f), start=2):
            if not row.get("frame"):
                raise ValueError(f"{path}:{row_no}: the 'frame' column is empty or missing")
            groups.setdefault((row.get("dataset") or "dataset", row.get("sequence") or "seq"), []).append(row)
    out = []
    for (ds, name), rows in groups.items():
        has_depth = all(r.get("depth") for r in rows)
        K = None
        if all(r.get("fx") for r in rows):
            K = np.array([[[float(r["fx"]), 0, float(r["cx"])], [0, float(r["fy"]), float(r["cy"])], [0, 0, 1]]
                          for r in rows])
        poses = None
        if all(r.get("pose") for r in rows):
            poses = np.array([[float(v) for v in r["pose"].split()] for r in rows]).reshape(-1, 4, 4)
        out.append(SequenceSpec(
            ds, name, [_abs(base, r["frame"]) for r in rows],
            [_abs(base, r["depth"]) for r in rows] if has_depth else None,
            [_abs(base, r["mask"]) for r in rows] if all(r.get("mask") for r in rows) else None,
            float(factor or rows[0].get("factor") or 1.0),
            depth_kind or rows[0].get("depth_kind") or ("metric_depth" if has_depth else "none"),
            "m", K, poses).check())
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
