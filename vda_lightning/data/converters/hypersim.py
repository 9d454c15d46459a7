"""Hypersim (Roberts et al., ICCV 2021, arXiv 2011.02523), image-style, as extracted from the per-scene zips.

Conventions, from the official Hypersim README / `contrib/mikeroberts3000` notes and the CUT3R
`preprocess_hypersim.py` converter:
  * `<scene>/images/scene_<cam>_final_preview/frame.NNNN.tonemap.jpg` (the dataset's own tone-mapped frame) and
    `<scene>/images/scene_<cam>_geometry_hdf5/frame.NNNN.depth_meters.hdf5` (HDF5 'dataset', float16): the
    DISTANCE in metres from the optical centre along each pixel's ray -> planar z = d / |K^-1 (u, v, 1)|;
    NaN (no surface, e.g. windows to the void) is invalid;
  * K: from the per-scene OpenGL projection `M_proj_*` in ROOT/metadata_camera_parameters.csv (published in the
    Hypersim repository; tilt-shift scenes have an off-centre principal point); without that file, the default
    Hypersim camera (60 degree horizontal field of view, centred);
  * poses: `<scene>/_detail/<cam>/camera_keyframe_positions.hdf5` (asset units) and `..._orientations.hdf5`
    (columns = camera axes in the world, OpenGL: x right, y up, z backward); metres = asset units *
    `meters_per_asset_unit` of `<scene>/_detail/metadata_scene.csv`.
Frames become single-image samples by default (`--clips` for clips of consecutive keyframes).

Plausible depth (`PLAUSIBLE_DEPTH`, the unit check before writing): Hypersim's 461 scenes are indoor
(Evermotion Archinteriors rooms, halls and lobbies), so the median valid depth of a few frames lies within
0.2-50 m. The layout fixes the unit (metres); the pose scale comes from metadata_scene.csv.
"""
from __future__ import annotations

import csv
import io
import os
import sys

import numpy as np

from ...io import read_hdf5_array
from ...trust import ReadError, display
from ..manifests import SequenceSpec
from .base import Converter, image_size, keep, numbered_files, read_text, subdirs
from .geometry import OPENGL_FROM_OPENCV, intrinsics, opengl_projection_to_intrinsics, rigid
from .readers import RayDistanceDepth

DEFAULT_HFOV_DEG = 60.0
PLAUSIBLE_DEPTH = (0.2, 50.0)   # metres, median of valid depth (see the module docstring)


def add_arguments(p) -> None:
    p.add_argument("root")
    p.add_argument("--scenes", nargs="*", default=None, help="e.g. ai_001_001 (default: all)")
    p.add_argument("--camera-parameters", default=None,
                   help="metadata_camera_parameters.csv (default: ROOT/metadata_camera_parameters.csv if present)")
    p.add_argument("--clips", dest="images", action="store_false",
                   help="clips of consecutive keyframes instead of single-image samples")


def _csv_rows(path: str, key: str) -> list[dict[str, str]]:
    """The rows of a small CSV file read through the trust boundary (size cap, UTF-8), each with column `key`."""
    text = read_text(path, "CSV file")
    try:
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
    except csv.Error as exn:
        raise ReadError(f"{display(path)}: not a readable CSV file ({' '.join(str(exn).split())[:120]})") from None
    if rows and key not in rows[0]:
        raise ReadError(f"{display(path)}: no {key!r} column (has {list(rows[0])[:8]})")
    return rows


def _scene_csv(path: str) -> dict[str, str]:
    """metadata_scene.csv: rows of parameter_name, parameter_value."""
    return {r["parameter_name"]: r.get("parameter_value") or "" for r in _csv_rows(path, "parameter_name")}


def camera_parameters(path: str | None) -> dict[str, dict[str, str]]:
    if not path:
        return {}
    return {r["scene_name"]: r for r in _csv_rows(path, "scene_name")}


def meters_per_asset_unit(path: str) -> float:
    value = _scene_csv(path).get("meters_per_asset_unit")
    if value is None:
        raise ReadError(f"{display(path)}: no meters_per_asset_unit row")
    try:
        scale = float(value)
    except ValueError:
        scale = float("nan")
    if not (np.isfinite(scale) and scale > 0):
        raise ReadError(f"{display(path)}: meters_per_asset_unit {value[:40]!r} is not a positive number")
    return scale


def scene_K(params: dict[str, str] | None, height: int, width: int, where: str) -> np.ndarray:
    if params is None:
        f = (width / 2) / np.tan(np.radians(DEFAULT_HFOV_DEG) / 2)
        return intrinsics(f, f, (width - 1) / 2, (height - 1) / 2)
    try:
        M = np.array([[float(params[f"M_proj_{i}{j}"]) for j in range(4)] for i in range(4)])
        w, h = int(float(params["settings_output_img_width"])), int(float(params["settings_output_img_height"]))
    except (KeyError, TypeError, ValueError, OverflowError) as exn:
        raise ReadError(f"{where}: camera parameters lack or garble {exn}") from None
    if (h, w) != (height, width):
        raise ReadError(f"{where}: camera parameters are for {w}x{h} but frames are {width}x{height}")
    if not np.isfinite(M).all():
        raise ReadError(f"{where}: M_proj holds non-finite numbers")
    try:
        return opengl_projection_to_intrinsics(M, width, height)
    except ValueError as exn:
        raise ReadError(f"{where}: {exn}") from None


def read_sequences(a) -> list[SequenceSpec]:
    root = os.path.abspath(a.root)
    cam_csv = a.camera_parameters or os.path.join(root, "metadata_camera_parameters.csv")
    params = camera_parameters(cam_csv if (a.camera_parameters or os.path.isfile(cam_csv)) else None)
    if not params:
        print(f"hypersim: no {cam_csv}: using the default camera ({DEFAULT_HFOV_DEG:g} degree horizontal field of "
              "view, centred) for every scene", file=sys.stderr)
    out = []
    for scene in subdirs(root):
        if not keep(scene, a.scenes) or not os.path.isdir(os.path.join(root, scene, "images")):
            continue
        detail = os.path.join(root, scene, "_detail")
        scale = meters_per_asset_unit(os.path.join(detail, "metadata_scene.csv"))
        for cam in sorted(c for c in subdirs(detail) if c.startswith("cam_")):
            frames = numbered_files(os.path.join(root, scene, "images", f"scene_{cam}_final_preview"),
                                    r"frame\.(\d+)\.tonemap\.jpg")
            dists = numbered_files(os.path.join(root, scene, "images", f"scene_{cam}_geometry_hdf5"),
                                   r"frame\.(\d+)\.depth_meters\.hdf5")
            ids = [n for n in frames if n in dists]
            if not ids:
                continue
            rot_path = os.path.join(detail, cam, "camera_keyframe_orientations.hdf5")
            pos = read_hdf5_array(os.path.join(detail, cam, "camera_keyframe_positions.hdf5"), "dataset")
            rot = read_hdf5_array(rot_path, "dataset")
            if pos.ndim != 2 or pos.shape[1] != 3 or rot.shape[1:] != (3, 3) or max(ids) >= min(len(pos), len(rot)):
                raise ReadError(f"{display(os.path.join(detail, cam))}: keyframe arrays {pos.shape} / {rot.shape} "
                                f"are not (N, 3) / (N, 3, 3) covering frame {max(ids)}")
            H, W = image_size(frames[ids[0]])
            try:
                K = scene_K(params.get(scene) if params else None, H, W, f"{display(cam_csv)} ({scene})")
            except ReadError as exn:
                print(f"hypersim/{scene}: skipped: {exn}", file=sys.stderr)
                break
            poses = np.stack([rigid(rot[n].astype(np.float64) @ OPENGL_FROM_OPENCV,
                                    pos[n].astype(np.float64) * float(scale)) for n in ids])
            out.append(SequenceSpec("hypersim", f"{scene}/{cam}", [frames[n] for n in ids], [dists[n] for n in ids],
                                    K=K, poses=poses, reader=RayDistanceDepth(K[0, 0], K[1, 1], K[0, 2], K[1, 2]),
                                    K_source=f"{display(cam_csv)} ({scene})" if params else "the default camera",
                                    poses_source=display(rot_path)).check())
    if not out:
        raise ReadError(f"{display(root)}: no <scene>/images/scene_cam_XX_final_preview/ frames with depth_meters.hdf5")
    return out


CONVERTER = Converter(
    "hypersim", "Hypersim (<scene>/images/scene_cam_XX_{final_preview,geometry_hdf5}/ + _detail/), images",
    "ROOT/<scene>/images/scene_cam_XX_{final_preview/frame.NNNN.tonemap.jpg, geometry_hdf5/frame.NNNN.\n"
    "depth_meters.hdf5 (ray distance, m -> planar z; NaN invalid)}, <scene>/_detail/ (camera keyframes, asset\n"
    "units * meters_per_asset_unit) and ROOT/metadata_camera_parameters.csv (per-scene M_proj). Image samples.",
    add_arguments, read_sequences, defaults={"images": True, "prefix": "image"}, plausible_depth=PLAUSIBLE_DEPTH)
