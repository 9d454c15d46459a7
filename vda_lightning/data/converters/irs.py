"""IRS (Wang et al. 2019, arXiv 1912.09678): indoor stereo renders, as extracted from the category archives.

Conventions, from the official IRS repository (HKBU-HPML/IRS: "depth = baseline * focal / disparity" with
focal 480 px and baseline 0.1 m for its 960x540 frames) and the CUT3R-style `preprocess_irs.py` loader:
  * `<Home|Office|Restaurant|Store>/<scene>/l_N.png` (left frame) and `d_N.exr` (left disparity, one float
    channel, pixels); N is not zero-padded, so frames are ordered numerically; any folder holding l_*.png and
    d_*.exr is a sequence;
  * depth = f * B / disparity, f = --focal (480 px at 960 px width, scaled with the frame width), B = --baseline;
    non-positive or non-finite disparity is invalid; `--as disparity` stores the disparity itself
    (relative_disparity, no unit check);
  * no poses; K = (f, f, (W-1)/2, (H-1)/2) (IRS states no principal point: the image centre is assumed).

Plausible depth (`PLAUSIBLE_DEPTH`, the unit check before writing): IRS renders indoor scenes (homes, offices,
restaurants, stores; the paper's title), so the median valid depth of a few frames lies within 0.2-50 m; a wrong
--focal or --baseline moves it out of that range.
"""
from __future__ import annotations

import os

from ...trust import ReadError, display
from ..manifests import SequenceSpec
from .base import Converter, image_size, numbered_files, positive_option
from .geometry import intrinsics
from .readers import DisparityDepth

PLAUSIBLE_DEPTH = (0.2, 50.0)   # metres, median of valid depth (see the module docstring)


def add_arguments(p) -> None:
    p.add_argument("root")
    p.add_argument("--as", dest="as_", choices=["depth", "disparity"], default="depth",
                   help="depth = f*B/disparity in metres (default), or the disparity as relative_disparity")
    p.add_argument("--focal", type=float, default=480.0, help="focal length in px at 960 px width (IRS: 480)")
    p.add_argument("--baseline", type=float, default=0.1, help="stereo baseline in metres (IRS: 0.1)")


def read_sequences(a) -> list[SequenceSpec]:
    root = os.path.abspath(a.root)
    positive_option(a.focal, "--focal")
    positive_option(a.baseline, "--baseline")
    out = []
    for dirpath, dirnames, files in sorted(os.walk(root)):
        dirnames.sort()
        if not any(f.startswith("l_") for f in files):
            continue
        frames = numbered_files(dirpath, r"l_(\d+)\.png")
        disps = numbered_files(dirpath, r"d_(\d+)\.exr")
        if not frames or not disps:
            continue
        missing = [n for n in frames if n not in disps]
        if missing:
            raise ReadError(f"{display(dirpath)}: no d_{missing[0]}.exr for l_{missing[0]}.png "
                            f"({len(missing)} missing)")
        H, W = image_size(next(iter(frames.values())))
        f = a.focal * W / 960.0
        as_depth = a.as_ == "depth"
        name = os.path.relpath(dirpath, root) if dirpath != root else os.path.basename(root)
        out.append(SequenceSpec("irs", name, list(frames.values()), [disps[n] for n in frames],
                                depth_kind="metric_depth" if as_depth else "relative_disparity",
                                units="m" if as_depth else "unitless",
                                K=intrinsics(f, f, (W - 1) / 2, (H - 1) / 2),
                                reader=DisparityDepth(f * a.baseline if as_depth else None),
                                K_source=f"--focal {a.focal:g} at {W}x{H}").check())
    if not out:
        raise ReadError(f"{display(root)}: no folder with l_N.png frames and d_N.exr disparities")
    return out


CONVERTER = Converter(
    "irs", "IRS (<category>/<scene>/l_N.png + d_N.exr disparity; f 480 px, B 0.1 m)",
    "ROOT/<Home|Office|Restaurant|Store>/<scene>/{l_N.png, d_N.exr} (left frame, left disparity in px):\n"
    "depth = f*B/disparity with f = 480 px at 960 px width and B = 0.1 m, or --as disparity; no poses.",
    add_arguments, read_sequences, unit_hint="--focal/--baseline", plausible_depth=PLAUSIBLE_DEPTH)
