"""Virtual KITTI 2 (Cabon et al. 2020, arXiv 2001.10773), as extracted from vkitti_2.0.3_{rgb,depth,textgt}.

Conventions, from the official VKITTI 2 README (europe.naverlabs.com, "Proxy Virtual Worlds VKITTI 2") and the
VGGT training loader's VKITTI source that reads the same files:
  * `SceneXX/<variation>/frames/rgb/Camera_{0,1}/rgb_NNNNN.jpg`, `.../frames/depth/Camera_c/depth_NNNNN.png`;
  * depth: 16-bit PNG, z-depth in centimetres; 65535 (655.35 m, the far plane) is sky -> invalid;
  * `SceneXX/<variation>/intrinsic.txt`: header, then `frame cameraID fx fy cx cy` per frame and camera;
  * `SceneXX/<variation>/extrinsic.txt`: header, then `frame cameraID` + the 4x4 world-to-camera matrix,
    row-major (camera axes as KITTI: x right, y down, z forward, i.e. OpenCV).
The three archives may be extracted into one ROOT (they share the SceneXX/<variation> tree) or side by side as
ROOT/vkitti_2.0.3_rgb/..., ROOT/vkitti_2.0.3_depth/..., ROOT/vkitti_2.0.3_textgt/...; both are found.
One sequence per (scene, variation, camera).

Plausible depth (`PLAUSIBLE_DEPTH`, the unit check before writing): VKITTI 2 clones KITTI's urban and rural drives
(README: a car-mounted camera; everything up to the 655.35 m far plane is depth), where KITTI's own depth
benchmark stops at 80 m: the median valid depth of a few frames lies within 1-100 m. Depth PNGs in millimetres
(x10) or decimetres/metres (/10, /100) fall outside. The layout fixes the unit (no flag changes it).
"""
from __future__ import annotations

import os

import numpy as np

from ...trust import ReadError, display
from ..manifests import SequenceSpec
from .base import Converter, keep, numbered_files, read_table, subdirs
from .geometry import intrinsics, invert_rigid
from .readers import ScaledPNGDepth

SKY = 65535
PLAUSIBLE_DEPTH = (1.0, 100.0)   # metres, median of valid depth (see the module docstring)
ARCHIVES = ("", "vkitti_2.0.3_rgb", "vkitti_2.0.3_depth", "vkitti_2.0.3_textgt")


def _find(root: str, *rel: str) -> str:
    """ROOT/rel, or the same path inside one of the per-archive folders."""
    for a in ARCHIVES:
        p = os.path.join(root, a, *rel)
        if os.path.exists(p):
            return p
    return os.path.join(root, *rel)


def add_arguments(p) -> None:
    p.add_argument("root")
    p.add_argument("--scenes", nargs="*", default=None, help="e.g. Scene01 Scene02 (default: all)")
    p.add_argument("--variations", nargs="*", default=None, help="e.g. clone fog (default: all)")
    p.add_argument("--cameras", nargs="*", type=int, default=[0, 1], help="camera ids (default: 0 1)")


def _camera_rows(path: str, camera: int, width: int) -> dict[int, np.ndarray]:
    rows = read_table(path, width, skip_header=True)
    return {int(r[0]): r[2:] for r in rows if int(r[1]) == camera}


def read_sequences(a) -> list[SequenceSpec]:
    root = os.path.abspath(a.root)
    scenes = [s for s in subdirs(_find(root)) if s.startswith("Scene")]
    for arch in ARCHIVES[1:]:
        scenes += [s for s in subdirs(os.path.join(root, arch)) if s.startswith("Scene") and s not in scenes]
    scenes = [s for s in sorted(scenes) if keep(s, a.scenes)]
    if not scenes:
        raise ReadError(f"{display(root)}: no SceneXX folders (expected SceneXX/<variation>/frames/rgb/Camera_0/...)")
    out = []
    for scene in scenes:
        for var in subdirs(_find(root, scene)):
            if not keep(var, a.variations):
                continue
            for cam in a.cameras:
                rgb_dir = _find(root, scene, var, "frames", "rgb", f"Camera_{cam}")
                frames = numbered_files(rgb_dir, r"rgb_(\d+)\.jpg")
                if not frames:
                    continue
                depth_dir = _find(root, scene, var, "frames", "depth", f"Camera_{cam}")
                depths = numbered_files(depth_dir, r"depth_(\d+)\.png")
                Ks = _camera_rows(_find(root, scene, var, "intrinsic.txt"), cam, 6)
                w2c = _camera_rows(_find(root, scene, var, "extrinsic.txt"), cam, 18)
                for n in frames:
                    for what, table, where in (("depth", depths, depth_dir), ("intrinsic", Ks, "intrinsic.txt"),
                                               ("extrinsic", w2c, "extrinsic.txt")):
                        if n not in table:
                            raise ReadError(f"{display(_find(root, scene, var, where))}: no {what} for frame {n} "
                                            f"of Camera_{cam}")
                ids = list(frames)
                out.append(SequenceSpec(
                    "vkitti2", f"{scene}/{var}/Camera_{cam}", [frames[n] for n in ids], [depths[n] for n in ids],
                    depth_kind="metric_depth", units="m",
                    K=np.stack([intrinsics(*Ks[n]) for n in ids]),
                    poses=invert_rigid(np.stack([w2c[n].reshape(4, 4) for n in ids])),
                    reader=ScaledPNGDepth(100.0, (SKY,)),
                    K_source=display(_find(root, scene, var, "intrinsic.txt")) + f" (Camera_{cam})",
                    poses_source=display(_find(root, scene, var, "extrinsic.txt")) + f" (Camera_{cam})").check())
    if not out:
        raise ReadError(f"{display(root)}: no rgb_NNNNN.jpg frames for scenes {scenes}, variations {a.variations}, "
                         f"cameras {a.cameras}")
    return out


CONVERTER = Converter(
    "vkitti2", "Virtual KITTI 2 (SceneXX/<variation>/frames/{rgb,depth}/Camera_c/ + intrinsic/extrinsic.txt)",
    "ROOT/SceneXX/<variation>/frames/{rgb,depth}/Camera_{0,1}/{rgb_NNNNN.jpg,depth_NNNNN.png} (depth: uint16 cm,\n"
    "65535 = sky -> invalid) and ROOT/SceneXX/<variation>/{intrinsic,extrinsic}.txt (world-to-camera); one\n"
    "sequence per scene, variation and camera. The three official archives may be extracted into ROOT.",
    add_arguments, read_sequences, plausible_depth=PLAUSIBLE_DEPTH)
