"""TartanAir v1 (Wang et al. 2020, arXiv 2003.14338), as extracted from the per-environment zips.

Conventions, from the official `tartanair_tools/data_type.md` and the CUT3R `preprocess_tartanair.py` loader:
  * `<env>/<Easy|Hard>/Pxxx/image_left/NNNNNN_left.png`, `depth_left/NNNNNN_left_depth.npy` (float32 metres,
    z-depth), `pose_left.txt` (and the same for `right`); the zips may add a second `<env>/` level: any folder
    holding `image_left/` and `pose_left.txt` is a trajectory;
  * sky: "the sky has a large depth value (e.g. 10000) instead of an infinite number" -> depth >= --sky-depth
    (default 1000 m) is invalid;
  * pose file: one line `tx ty tz qx qy qz qw` per frame, the camera's position and orientation in the world,
    in NED body axes (x forward, y right, z down) -> converted to OpenCV camera axes (x right, y down, z forward);
  * fixed intrinsics fx = fy = 320, cx = 320, cy = 240 for 640x480 frames, scaled to the frame size found.

Plausible depth (`PLAUSIBLE_DEPTH`, the unit check before writing): TartanAir's environments are rooms, streets,
factories, forests and coasts rendered in metres with the sky at ~1e4 m (data_type.md), so the median valid depth
of a few frames lies within 0.2-250 m. Depth saved in millimetres is refused: most of it lies beyond
--sky-depth (no valid pixel left) and what remains has a median of hundreds. The layout fixes the unit.
"""
from __future__ import annotations

import os

import numpy as np

from ...trust import ReadError, display
from ..manifests import SequenceSpec
from .base import Converter, image_size, keep, numbered_files, positive_option, read_table_lines
from .geometry import NED_BODY_FROM_OPENCV, change_camera_axes, intrinsics, quaternion_to_matrix, rigid
from .readers import FarLimitedDepth

K_640x480 = (320.0, 320.0, 320.0, 240.0)
PLAUSIBLE_DEPTH = (0.2, 250.0)   # metres, median of valid depth (see the module docstring)


def add_arguments(p) -> None:
    p.add_argument("root")
    p.add_argument("--envs", nargs="*", default=None, help="environments, e.g. abandonedfactory (default: all)")
    p.add_argument("--difficulties", nargs="*", default=["Easy", "Hard"])
    p.add_argument("--cameras", nargs="*", default=["left"], choices=["left", "right"],
                   help="left (default), right, or both")
    p.add_argument("--sky-depth", type=float, default=1000.0, help="depth at or beyond this (m) is sky: invalid")


def trajectories(root: str) -> list[str]:
    """Folders with image_left/ and pose_left.txt, at most four levels below ROOT, in sorted order."""
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        level = 0 if dirpath == root else len(os.path.relpath(dirpath, root).split(os.sep))
        if os.path.isdir(os.path.join(dirpath, "image_left")) and os.path.isfile(
                os.path.join(dirpath, "pose_left.txt")):
            found.append(dirpath)
            dirnames[:] = []
        elif level >= 4:
            dirnames[:] = []
    return sorted(found)


def poses_from_file(path: str) -> np.ndarray:
    """(N, 4, 4) camera-to-world, OpenCV camera axes, from `tx ty tz qx qy qz qw` lines in NED body axes; a
    quaternion that is not of unit norm is one line `<file>:<line>: ...`."""
    rows, lines = read_table_lines(path, 7)
    return np.stack([change_camera_axes(rigid(quaternion_to_matrix(*r[3:], what=f"{display(path)}:{line}"), r[:3]),
                                        NED_BODY_FROM_OPENCV) for r, line in zip(rows, lines)])


def read_sequences(a) -> list[SequenceSpec]:
    root = os.path.abspath(a.root)
    positive_option(a.sky_depth, "--sky-depth")
    out = []
    trajs = trajectories(root)
    if not trajs:
        raise ReadError(f"{display(root)}: no <env>/<Easy|Hard>/Pxxx/ folders with image_left/ and pose_left.txt")
    for traj in trajs:
        parts = os.path.relpath(traj, root).split(os.sep)
        env = parts[0] if len(parts) >= 3 else os.path.basename(root)
        diff, name = (parts[-2] if len(parts) >= 2 else ""), parts[-1]
        if not keep(env, a.envs) or (a.difficulties and diff not in a.difficulties):
            continue
        for cam in a.cameras:
            frames = numbered_files(os.path.join(traj, f"image_{cam}"), rf"(\d+)_{cam}\.png")
            depth_dir = os.path.join(traj, f"depth_{cam}")
            depths = numbered_files(depth_dir, rf"(\d+)_{cam}_depth\.npy")
            if not frames:
                continue
            missing = [n for n in frames if n not in depths]
            if missing:
                raise ReadError(f"{display(depth_dir)}: no depth for frame {missing[0]:06d} "
                                f"(of {len(missing)} missing)")
            pose_path = os.path.join(traj, f"pose_{cam}.txt")
            poses = poses_from_file(pose_path)
            if len(poses) != len(frames):
                raise ReadError(f"{display(pose_path)}: {len(poses)} poses for {len(frames)} frames")
            H, W = image_size(next(iter(frames.values())))
            fx, fy, cx, cy = K_640x480
            K = intrinsics(fx * W / 640, fy * H / 480, cx * W / 640, cy * H / 480)
            out.append(SequenceSpec("tartanair", f"{env}/{diff}/{name}/{cam}", list(frames.values()),
                                    [depths[n] for n in frames], K=K, poses=poses,
                                    reader=FarLimitedDepth(a.sky_depth), K_source=f"TartanAir's fixed K at {W}x{H}",
                                    poses_source=display(pose_path)).check())
    if not out:
        raise ReadError(f"{display(root)}: no trajectory matches envs {a.envs}, difficulties {a.difficulties}, "
                         f"cameras {a.cameras}")
    return out


CONVERTER = Converter(
    "tartanair", "TartanAir (<env>/<Easy|Hard>/Pxxx/{image_left,depth_left}/ + pose_left.txt, NED poses)",
    "ROOT/<env>/<Easy|Hard>/Pxxx/{image_left/NNNNNN_left.png, depth_left/NNNNNN_left_depth.npy (float32 m,\n"
    "sky ~1e4 -> invalid beyond --sky-depth), pose_left.txt (tx ty tz qx qy qz qw, NED body axes)};\n"
    "K = 320, 320, 320, 240 at 640x480. One sequence per trajectory and camera.",
    add_arguments, read_sequences, plausible_depth=PLAUSIBLE_DEPTH)
