"""Spring (Mehl et al., CVPR 2023, arXiv 2303.01943), as extracted from train_frame_left.zip,
train_disp1_left.zip and train_cam_data.zip.

Conventions, from the official Spring tools (`flow_IO.py`: `readDsp5Disp` reads HDF5 key 'disparity', invalid
= NaN) and the MapAnything / CUT3R Spring converters that read the same files:
  * `<split>/<NNNN>/frame_left/frame_left_FFFF.png` (1920x1080, F from 1), `disp1_left/disp1_left_FFFF.dsp5`;
  * disparity at twice the frame resolution, in pixels of the frame: every 2nd sample (from 0) is taken, and
    depth = fx * B / disparity with this frame's fx and B = 0.065 m; NaN / non-positive disparity is invalid;
  * `cam_data/intrinsics.txt`: `fx fy cx cy` per frame; `cam_data/extrinsics.txt`: 16 numbers per frame, the
    row-major 4x4 world-to-camera matrix in OpenCV axes (camera-to-world = inverse); the right camera sits
    B to the right of the left one (world-to-camera translation x minus B).

Plausible depth (`PLAUSIBLE_DEPTH`, the unit check before writing): Spring's scenes (the Blender open movie) range
from close-ups of its characters to mountain valleys, so the median valid depth of a few frames lies within
0.1-500 m; a wrong --baseline (or a focal length in other units) moves it out of that range.
"""
from __future__ import annotations

import os

import numpy as np

from ...trust import ReadError, display
from ..manifests import SequenceSpec
from .base import Converter, keep, numbered_files, positive_option, read_table, subdirs
from .geometry import intrinsics, invert_rigid
from .readers import Dsp5Depth

PLAUSIBLE_DEPTH = (0.1, 500.0)   # metres, median of valid depth (see the module docstring)


def add_arguments(p) -> None:
    p.add_argument("root")
    p.add_argument("--splits", nargs="*", default=["train"], help="default: train (the test split has no GT)")
    p.add_argument("--scenes", nargs="*", default=None, help="scene numbers, e.g. 0001 (default: all)")
    p.add_argument("--cameras", nargs="*", default=["left"], choices=["left", "right"])
    p.add_argument("--baseline", type=float, default=0.065, help="stereo baseline in metres (Spring: 0.065)")


def read_sequences(a) -> list[SequenceSpec]:
    root = os.path.abspath(a.root)
    positive_option(a.baseline, "--baseline")
    out = []
    for split in a.splits:
        split_dir = os.path.join(root, split)
        if not os.path.isdir(split_dir):
            raise ReadError(f"{display(split_dir)}: split folder does not exist (expected "
                            "ROOT/<split>/<NNNN>/frame_left/)")
        for scene in subdirs(split_dir):
            if not keep(scene, a.scenes):
                continue
            d = os.path.join(split_dir, scene)
            for cam in a.cameras:
                frames = numbered_files(os.path.join(d, f"frame_{cam}"), rf"frame_{cam}_(\d+)\.png")
                if not frames:
                    continue
                disps = numbered_files(os.path.join(d, f"disp1_{cam}"), rf"disp1_{cam}_(\d+)\.dsp5")
                missing = [n for n in frames if n not in disps]
                if missing:
                    raise ReadError(f"{display(os.path.join(d, f'disp1_{cam}'))}: no disp1_{cam}_{missing[0]:04d}.dsp5 "
                                     f"({len(missing)} missing)")
                intr_path, extr_path = (os.path.join(d, "cam_data", f"{w}.txt") for w in ("intrinsics", "extrinsics"))
                intr = read_table(intr_path, 4)
                w2c = read_table(extr_path, 16).reshape(-1, 4, 4)
                for path, table in ((intr_path, intr), (extr_path, w2c)):
                    if len(table) != len(frames):
                        raise ReadError(f"{display(path)}: {len(table)} rows for {len(frames)} frames")
                if cam == "right":
                    w2c = w2c.copy()
                    w2c[:, 0, 3] -= a.baseline
                out.append(SequenceSpec(
                    "spring", f"{split}/{scene}/{cam}", list(frames.values()), [disps[n] for n in frames],
                    K=np.stack([intrinsics(*r) for r in intr]), poses=invert_rigid(w2c),
                    reader=Dsp5Depth(tuple(float(r[0]) * a.baseline for r in intr)),
                    K_source=display(intr_path), poses_source=display(extr_path)).check())
    if not out:
        raise ReadError(f"{display(root)}: no <split>/<NNNN>/frame_left/ sequences in splits {a.splits}")
    return out


CONVERTER = Converter(
    "spring", "Spring (<split>/<NNNN>/{frame_left, disp1_left (dsp5, 2x), cam_data}/)",
    "ROOT/<split>/<NNNN>/{frame_left/frame_left_FFFF.png, disp1_left/disp1_left_FFFF.dsp5 (HDF5 'disparity' at\n"
    "2x resolution), cam_data/{intrinsics,extrinsics}.txt (fx fy cx cy; world-to-camera 4x4)}: depth =\n"
    "fx*0.065/disparity, NaN invalid.",
    add_arguments, read_sequences, unit_hint="--baseline", plausible_depth=PLAUSIBLE_DEPTH)
