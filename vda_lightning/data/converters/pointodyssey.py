"""PointOdyssey (Zheng et al., ICCV 2023, arXiv 2307.15055), as extracted from the split archives.

Conventions, from the official repository (`utils/reprojection.py`: "depth_16bit / 65535 * 1000") and the
MonST3R / CUT3R PointOdyssey loaders that read the released files:
  * `<split>/<seq>/rgbs/rgb_NNNNN.jpg`, `depths/depth_NNNNN.png`, `anno.npz`;
  * depth: uint16, metres = value / 65535 * 1000 (full scale 1000 m); 65535 (the clipped far plane, e.g. the
    HDRI background) and 0 are invalid;
  * `anno.npz`: `intrinsics` (N, 3, 3) pixel K and `extrinsics` (N, 4, 4) world-to-camera in OpenCV axes
    (camera-to-world = inverse, as in MonST3R's `camera_pose = [R^T, -R^T t]`).
The paper drops the sequences without background depth (0.13 M frames): `--drop-no-background` skips a sequence
whose sampled frames have more than `--max-invalid` of their pixels invalid (far plane or 0).

Plausible depth (`PLAUSIBLE_DEPTH`, the unit check before writing): PointOdyssey's scenes are indoor rooms and
outdoor sets around animated characters (paper §3), stored up to its 1000 m full scale, so the median valid depth
of a few frames lies within 0.2-300 m; a wrong `--full-scale` moves it out of that range.
"""
from __future__ import annotations

import os
import sys

import numpy as np

from ...trust import ReadError, display, load_npz
from ..depth_stats import valid_values
from ..manifests import SequenceSpec
from .base import Converter, keep, numbered_files, positive_option, subdirs
from .geometry import invert_rigid
from .readers import ScaledPNGDepth

FAR = 65535
PLAUSIBLE_DEPTH = (0.2, 300.0)   # metres, median of valid depth (see the module docstring)


def add_arguments(p) -> None:
    p.add_argument("root")
    p.add_argument("--splits", nargs="*", default=["train"], help="default: train")
    p.add_argument("--sequences", nargs="*", default=None, help="sequence folder names (default: all)")
    p.add_argument("--full-scale", type=float, default=1000.0,
                   help="metres at the stored value 65535 (the dataset's 1000 m)")
    p.add_argument("--drop-no-background", action="store_true",
                   help="skip sequences without background depth (as the paper does)")
    p.add_argument("--max-invalid", type=float, default=0.3,
                   help="with --drop-no-background: the invalid-pixel fraction above which a sequence is dropped")


def load_anno(path: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """`intrinsics` (n, 3, 3) and `extrinsics` (n, 4, 4) of an anno.npz, read through `trust.load_npz` (no
    pickles; every member's header checked against the caps and its stored length before it is read)."""
    arrays = load_npz(path)
    missing = [k for k in ("intrinsics", "extrinsics") if k not in arrays]
    if missing:
        raise ReadError(f"{display(path)}: anno.npz lacks {missing[0]!r} (keys intrinsics, extrinsics expected; "
                        f"has {sorted(arrays)[:8]})")
    K, w2c = arrays["intrinsics"], arrays["extrinsics"]
    if K.dtype.kind not in "fiu" or w2c.dtype.kind not in "fiu":
        raise ReadError(f"{display(path)}: intrinsics {K.dtype} / extrinsics {w2c.dtype} are not numbers")
    if K.shape != (n, 3, 3) or w2c.shape != (n, 4, 4):
        raise ReadError(f"{display(path)}: intrinsics {K.shape} / extrinsics {w2c.shape} do not fit {n} frames")
    K, w2c = K.astype(np.float64), w2c.astype(np.float64)
    if not (np.isfinite(K).all() and np.isfinite(w2c).all()):
        raise ReadError(f"{display(path)}: non-finite intrinsics or extrinsics")
    return K, w2c


def invalid_fraction(seq: SequenceSpec, frames: int = 3) -> float:
    n = len(seq.depths)
    picks = sorted({int(round(x)) for x in np.linspace(0, n - 1, min(n, frames))})
    total = valid = 0
    for i in picks:
        d = seq.reader(seq.depths[i], i)
        total += d.size
        valid += valid_values(d).size
    return 1.0 - valid / max(total, 1)


def read_sequences(a) -> list[SequenceSpec]:
    root = os.path.abspath(a.root)
    positive_option(a.full_scale, "--full-scale")
    out, dropped = [], 0
    for split in a.splits:
        split_dir = os.path.join(root, split)
        if not os.path.isdir(split_dir):
            raise ReadError(f"{display(split_dir)}: split folder does not exist (expected ROOT/<split>/<seq>/rgbs/)")
        for name in subdirs(split_dir):
            d = os.path.join(split_dir, name)
            if not keep(name, a.sequences) or not os.path.isdir(os.path.join(d, "rgbs")):
                continue
            frames = numbered_files(os.path.join(d, "rgbs"), r"rgb_(\d+)\.jpg")
            depths = numbered_files(os.path.join(d, "depths"), r"depth_(\d+)\.png")
            missing = [i for i in frames if i not in depths]
            if missing:
                raise ReadError(f"{display(os.path.join(d, 'depths'))}: no depth_{missing[0]:05d}.png "
                                 f"({len(missing)} missing)")
            if list(frames) != list(range(len(frames))):
                raise ReadError(f"{display(os.path.join(d, 'rgbs'))}: frames are not numbered 0..{len(frames) - 1}")
            anno = os.path.join(d, "anno.npz")
            K, w2c = load_anno(anno, len(frames))
            seq = SequenceSpec("pointodyssey", f"{split}/{name}", list(frames.values()),
                               [depths[i] for i in frames], K=K, poses=invert_rigid(w2c),
                               reader=ScaledPNGDepth(FAR / a.full_scale, (FAR,)),
                               K_source=f"{display(anno)} intrinsics",
                               poses_source=f"{display(anno)} extrinsics").check()
            if a.drop_no_background:
                frac = invalid_fraction(seq)
                if frac > a.max_invalid:
                    print(f"pointodyssey/{seq.name}: dropped, {100 * frac:.0f}% of sampled pixels have no depth "
                          f"(no background depth; --max-invalid {a.max_invalid:g})", file=sys.stderr)
                    dropped += 1
                    continue
            out.append(seq)
    if not out:
        raise ReadError(f"{display(root)}: no <split>/<seq>/rgbs/ sequences in splits {a.splits}"
                         + (f" ({dropped} dropped without background depth)" if dropped else ""))
    return out


CONVERTER = Converter(
    "pointodyssey", "PointOdyssey (<split>/<seq>/{rgbs,depths}/ + anno.npz)",
    "ROOT/<split>/<seq>/{rgbs/rgb_NNNNN.jpg, depths/depth_NNNNN.png (uint16, m = v/65535*1000; 65535 and 0\n"
    "invalid), anno.npz (intrinsics (N,3,3), extrinsics (N,4,4) world-to-camera)}. --drop-no-background skips\n"
    "sequences without background depth, as the paper does.",
    add_arguments, read_sequences, unit_hint="--full-scale", plausible_depth=PLAUSIBLE_DEPTH)
