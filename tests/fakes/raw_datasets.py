"""Tiny replicas of the training datasets' raw layouts, rendered with known z-depth, K and camera-to-world poses.

Each writer renders a static procedural scene (`vda_lightning/scenes.py`, exact z-depth by construction) and
stores it the way the dataset is distributed: the real file names, encodings (cm PNG, float16-bits PNG, EXR
disparity, HDF5 at 2x, ray distance), text formats, sky/invalid values and pose conventions (world-to-camera,
NED body axes, OpenGL axes, PyTorch3D NDC cameras). Every convention is written here from the dataset's
description independently of the converters (e.g. NED axes as "body x = camera z", quaternions by Shepperd's
method), so a converter that inverts or swaps a convention disagrees with the truth.

`Truth` holds what a correct converter must give back: depth in metres as the dataset stores it (its own
quantisation; 0 where invalid), K of each frame and OpenCV camera-to-world poses in the renderer's world.
"""
from __future__ import annotations

import csv
import gzip
import json
import os
from dataclasses import dataclass

import cv2
import numpy as np

from vda_lightning.scenes import random_scene, render_frame

T_FRAMES = 4
FRAME_STEP = 3          # the scene camera moves a little per step; every 3rd position makes visible motion


@dataclass
class Truth:
    frames: np.ndarray          # (T, H, W, 3) uint8 as rendered (JPEG layouts store it lossy)
    depth: np.ndarray           # (T, H, W) float32 metres as stored by the dataset; 0 = invalid
    K: np.ndarray               # (T, 3, 3) pixel intrinsics, centres at integer coordinates
    c2w: np.ndarray             # (T, 4, 4) camera-to-world, OpenCV axes
    lossy_frames: bool = False
    no_background: bool = False  # PointOdyssey: a sequence --drop-no-background must drop


def K_of(fx, fy, cx, cy) -> np.ndarray:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def static_scene(seed: int, scale: float = 1.0) -> dict:
    """A procedural room scene with nothing moving, every length times `scale` (depth and camera motion scale
    with it, the images stay the same): the converters check that the median depth is plausible for their
    dataset, so each replica is rendered at its dataset's scale (rooms: ~5-8 m, streets: ~17 m)."""
    scene = random_scene(np.random.default_rng([seed, 12]))
    for ob in scene["objects"]:          # nothing moves: every pixel is static for the reprojection check
        ob["vel"] = np.zeros(3)
        ob["spin"] = 0.0
        for key in ("center", "half", "radius"):
            if key in ob:
                ob[key] = ob[key] * scale
    scene["room"] = scene["room"] * scale
    cam = scene["cam"]
    for key in ("eye0", "vel", "target0", "sway"):
        cam[key] = cam[key] * scale
    scene["fog"] *= scale
    return scene


def render(scene: dict, K: np.ndarray, H: int, W: int, c2ws: list[np.ndarray]):
    out = [render_frame(scene, 0, K, H, W, c2w) for c2w in c2ws]
    return np.stack([o[0] for o in out]), np.stack([o[1] for o in out])


def path_poses(scene: dict, n: int = T_FRAMES) -> list[np.ndarray]:
    from vda_lightning.scenes import camera_pose

    return [camera_pose(scene["cam"], FRAME_STEP * t) for t in range(n)]


def translate_x(c2w: np.ndarray, dx: float) -> np.ndarray:
    """The same camera moved dx along its own x (right) axis."""
    T = np.eye(4)
    T[0, 3] = dx
    return c2w @ T


def matrix_to_quaternion(R: np.ndarray) -> tuple[float, float, float, float]:
    """(qx, qy, qz, qw) of a rotation matrix, Shepperd's method (largest diagonal term first)."""
    tr = np.trace(R)
    if tr > 0:
        s = 2 * np.sqrt(1 + tr)
        w, x, y, z = s / 4, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = 2 * np.sqrt(1 + R[0, 0] - R[1, 1] - R[2, 2])
        w, x, y, z = (R[2, 1] - R[1, 2]) / s, s / 4, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s
    elif R[1, 1] > R[2, 2]:
        s = 2 * np.sqrt(1 + R[1, 1] - R[0, 0] - R[2, 2])
        w, x, y, z = (R[0, 2] - R[2, 0]) / s, (R[0, 1] + R[1, 0]) / s, s / 4, (R[1, 2] + R[2, 1]) / s
    else:
        s = 2 * np.sqrt(1 + R[2, 2] - R[0, 0] - R[1, 1])
        w, x, y, z = (R[1, 0] - R[0, 1]) / s, (R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, s / 4
    return float(x), float(y), float(z), float(w)


def _mkdir(*parts) -> str:
    path = os.path.join(*parts)
    os.makedirs(path, exist_ok=True)
    return path


def _rgb(path: str, frame: np.ndarray) -> None:
    cv2.imwrite(path, np.ascontiguousarray(frame[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 95])


# -- Virtual KITTI 2 ------------------------------------------------------------------------------------------------

def write_vkitti2(root: str, seed: int = 1) -> dict[str, Truth]:
    """Scene01/clone, Camera_0 and Camera_1 (0.532725 m to the right), cm PNG depth with 65535 sky, text GT in the
    per-archive folders vkitti_2.0.3_{rgb,depth,textgt} (as the official tars extract side by side); the scene at
    twice the room scale (median depth ~17 m, a street's)."""
    H, W, K = 30, 40, K_of(36.5, 36.5, 19.75, 14.25)
    scene = static_scene(seed, scale=2.0)
    base = path_poses(scene)
    truths, intr, extr = {}, ["frame cameraID K[0,0] K[1,1] K[0,2] K[1,2]"], [
        "frame cameraID r1,1 r1,2 r1,3 t1 r2,1 r2,2 r2,3 t2 r3,1 r3,2 r3,3 t3 0 0 0 1"]
    cams = {0: base, 1: [translate_x(c, 0.532725) for c in base]}
    for cam, c2ws in cams.items():
        frames, z = render(scene, K, H, W, c2ws)
        rgb = _mkdir(root, "vkitti_2.0.3_rgb", "Scene01", "clone", "frames", "rgb", f"Camera_{cam}")
        dep = _mkdir(root, "vkitti_2.0.3_depth", "Scene01", "clone", "frames", "depth", f"Camera_{cam}")
        cm = np.where(z > 0, np.minimum(np.rint(z.astype(np.float64) * 100), 65534), 65535).astype(np.uint16)
        for t in range(T_FRAMES):
            _rgb(os.path.join(rgb, f"rgb_{t:05d}.jpg"), frames[t])
            cv2.imwrite(os.path.join(dep, f"depth_{t:05d}.png"), cm[t])
        truths[f"Scene01/clone/Camera_{cam}"] = Truth(
            frames, np.where(cm == 65535, 0, cm.astype(np.float64) / 100).astype(np.float32),
            np.stack([K] * T_FRAMES), np.stack(c2ws), lossy_frames=True)
    for t in range(T_FRAMES):   # rows are ordered frame by frame, both cameras per frame, as in the dataset
        for cam, c2ws in cams.items():
            intr.append(f"{t} {cam} {K[0, 0]:.4f} {K[1, 1]:.4f} {K[0, 2]:.4f} {K[1, 2]:.4f}")
            w2c = np.linalg.inv(c2ws[t])
            extr.append(f"{t} {cam} " + " ".join(f"{v:.10g}" for v in w2c.reshape(-1)))
    txt = _mkdir(root, "vkitti_2.0.3_textgt", "Scene01", "clone")
    for name, lines in (("intrinsic.txt", intr), ("extrinsic.txt", extr)):
        with open(os.path.join(txt, name), "w") as f:
            f.write("\n".join(lines) + "\n")
    return truths


# -- TartanAir ------------------------------------------------------------------------------------------------------

# the renderer's world (y up) written in a NED world: north = z, east = -x, down = -y (a proper rotation)
NED_WORLD = np.array([[0.0, 0, 1, 0], [-1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 0, 1]])


def write_tartanair(root: str, seed: int = 2) -> dict[str, Truth]:
    """abandonedfactory/abandonedfactory/Easy/P000 (the doubled folder of the official zips), frames at 64x48
    with the published K scaled by 1/10, float32 npy depth with a 1e4 m sky, NED pose_left.txt."""
    H, W, K = 48, 64, K_of(32.0, 32.0, 32.0, 24.0)
    scene = static_scene(seed)
    c2ws = path_poses(scene)
    frames, z = render(scene, K, H, W, c2ws)
    d = os.path.join(root, "abandonedfactory", "abandonedfactory", "Easy", "P000")
    img, dep = _mkdir(d, "image_left"), _mkdir(d, "depth_left")
    lines = []
    for t in range(T_FRAMES):
        cv2.imwrite(os.path.join(img, f"{t:06d}_left.png"), frames[t][:, :, ::-1])
        np.save(os.path.join(dep, f"{t:06d}_left_depth.npy"), np.where(z[t] > 0, z[t], 12345.6).astype(np.float32))
        R = c2ws[t][:3, :3]
        body = np.eye(4)                    # body axes: x forward = camera z, y right = camera x, z down = camera y
        body[:3, :3] = np.stack([R[:, 2], R[:, 0], R[:, 1]], axis=1)
        body[:3, 3] = c2ws[t][:3, 3]
        ned = NED_WORLD @ body
        qx, qy, qz, qw = matrix_to_quaternion(ned[:3, :3])
        lines.append(" ".join(f"{v:.18e}" for v in (*ned[:3, 3], qx, qy, qz, qw)))
    with open(os.path.join(d, "pose_left.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return {"abandonedfactory/Easy/P000/left": Truth(frames, z, np.stack([K] * T_FRAMES), np.stack(c2ws))}


# -- PointOdyssey ---------------------------------------------------------------------------------------------------

def write_pointodyssey(root: str, seed: int = 3) -> dict[str, Truth]:
    """train/ani_dancing (a normal sequence) and train/cnb_nobg (most pixels at the 65535 far plane: no
    background depth); uint16 depth = m / 1000 * 65535, anno.npz with float32 intrinsics and world-to-camera."""
    H, W, K = 30, 40, K_of(33.0, 34.0, 20.5, 15.25)
    truths = {}
    for name, s in (("ani_dancing", seed), ("cnb_nobg", seed + 10)):
        scene = static_scene(s)
        c2ws = path_poses(scene)
        frames, z = render(scene, K, H, W, c2ws)
        if name == "cnb_nobg":
            z[:, : 2 * H // 3] = 0            # no geometry behind the actors: the far plane
        d = os.path.join(root, "train", name)
        rgbs, deps = _mkdir(d, "rgbs"), _mkdir(d, "depths")
        q = np.where(z > 0, np.minimum(np.rint(z.astype(np.float64) / 1000 * 65535), 65534), 65535).astype(np.uint16)
        for t in range(T_FRAMES):
            _rgb(os.path.join(rgbs, f"rgb_{t:05d}.jpg"), frames[t])
            cv2.imwrite(os.path.join(deps, f"depth_{t:05d}.png"), q[t])
        K32 = np.stack([K] * T_FRAMES).astype(np.float32)
        w2c32 = np.stack([np.linalg.inv(c) for c in c2ws]).astype(np.float32)
        np.savez(os.path.join(d, "anno.npz"), intrinsics=K32, extrinsics=w2c32,
                 trajs_2d=np.zeros((T_FRAMES, 3, 2), np.float32), trajs_3d=np.zeros((T_FRAMES, 3, 3), np.float32),
                 valids=np.ones((T_FRAMES, 3), bool), visibs=np.ones((T_FRAMES, 3), bool))
        truths[f"train/{name}"] = Truth(
            frames, np.where(q == 65535, 0, q.astype(np.float64) / 65535 * 1000).astype(np.float32),
            K32.astype(np.float64), np.stack(c2ws), lossy_frames=True, no_background=name == "cnb_nobg")
    return truths


# -- IRS ------------------------------------------------------------------------------------------------------------

def write_irs(root: str, seed: int = 4) -> dict[str, Truth]:
    """Home/ArchVizInterior03Data with l_N.png / d_N.exr numbered 8..11 (not zero-padded: 10 sorts after 9),
    96x54 frames (a tenth of 960x540: f = 48 px), disparity = f * 0.1 / z, 0 where there is no surface."""
    import OpenEXR

    H, W = 54, 96
    f, B = 48.0, 0.1
    K = K_of(f, f, (W - 1) / 2, (H - 1) / 2)
    scene = static_scene(seed)
    c2ws = path_poses(scene)
    frames, z = render(scene, K, H, W, c2ws)
    d = _mkdir(root, "Home", "ArchVizInterior03Data")
    disp = np.where(z > 0, f * B / np.where(z > 0, z, 1), 0).astype(np.float32)
    for t in range(T_FRAMES):
        n = 8 + t
        cv2.imwrite(os.path.join(d, f"l_{n}.png"), frames[t][:, :, ::-1])
        cv2.imwrite(os.path.join(d, f"r_{n}.png"), frames[t][:, :, ::-1])
        OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage},
                     {"G": disp[t]}).write(os.path.join(d, f"d_{n}.exr"))
    depth = np.where(disp > 0, f * B / np.where(disp > 0, disp.astype(np.float64), 1), 0).astype(np.float32)
    return {"Home/ArchVizInterior03Data": Truth(frames, depth, np.stack([K] * T_FRAMES), np.stack(c2ws))}


# -- Spring ---------------------------------------------------------------------------------------------------------

def write_spring(root: str, seed: int = 5) -> dict[str, Truth]:
    """train/0001: frame_left_0001.png.. (1-based), disparity rendered at 2x resolution (K scaled for the 2x pixel
    grid) in 1x pixels, NaN where there is no surface, and cam_data/{intrinsics,extrinsics}.txt."""
    import h5py

    H, W, B = 30, 40, 0.065
    K = K_of(38.0, 38.0, 20.25, 14.0)
    K2 = K_of(2 * K[0, 0], 2 * K[1, 1], 2 * K[0, 2] + 0.5, 2 * K[1, 2] + 0.5)   # pixel centres of the 2x grid
    scene = static_scene(seed)
    c2ws = path_poses(scene)
    frames, _ = render(scene, K, H, W, c2ws)
    _, z2 = render(scene, K2, 2 * H, 2 * W, c2ws)
    d = os.path.join(root, "train", "0001")
    fl, dl, cd = _mkdir(d, "frame_left"), _mkdir(d, "disp1_left"), _mkdir(d, "cam_data")
    disp2 = np.where(z2 > 0, K[0, 0] * B / np.where(z2 > 0, z2, 1), np.nan).astype(np.float32)
    for t in range(T_FRAMES):
        cv2.imwrite(os.path.join(fl, f"frame_left_{t + 1:04d}.png"), frames[t][:, :, ::-1])
        with h5py.File(os.path.join(dl, f"disp1_left_{t + 1:04d}.dsp5"), "w") as h:
            h.create_dataset("disparity", data=disp2[t], compression="gzip", compression_opts=5)
    np.savetxt(os.path.join(cd, "intrinsics.txt"), np.array([[K[0, 0], K[1, 1], K[0, 2], K[1, 2]]] * T_FRAMES))
    np.savetxt(os.path.join(cd, "extrinsics.txt"), np.stack([np.linalg.inv(c).reshape(-1) for c in c2ws]))
    sub = disp2[:, ::2, ::2].astype(np.float64)
    depth = np.where(np.isfinite(sub), K[0, 0] * B / np.where(np.isfinite(sub), sub, 1), 0).astype(np.float32)
    return {"train/0001/left": Truth(frames, depth, np.stack([K] * T_FRAMES), np.stack(c2ws))}


# -- Dynamic Replica ------------------------------------------------------------------------------------------------

def write_dynamic_replica(root: str, seed: int = 6) -> dict[str, Truth]:
    """train/frame_annotations_train.jgz indexing train/<seq>_source_left/{images,depths}/: float16-bits depth
    PNGs (0 where there is no surface), NDC-isotropic intrinsics, PyTorch3D R, T (X_view = X_world R + T)."""
    H, W = 36, 48
    K = K_of(40.0, 40.0, 23.0, 17.5)
    scene = static_scene(seed)
    c2ws = path_poses(scene)
    frames, z = render(scene, K, H, W, c2ws)
    seq = "009850-3_obj"
    folder = f"{seq}_source_left"
    for sub in ("images", "depths"):
        _mkdir(root, "train", folder, sub)
    s = min(H, W) / 2                                          # ndc_isotropic: half the shorter side
    focal = [K[0, 0] / s, K[1, 1] / s]
    pp = [(W / 2 - (K[0, 2] + 0.5)) / s, (H / 2 - (K[1, 2] + 0.5)) / s]   # NDC +x left / +y up, edges at +-1
    flip = np.diag([-1.0, -1.0, 1.0])                          # OpenCV camera -> PyTorch3D camera (x left, y up)
    z16 = z.astype(np.float16)
    annots = []
    for t in range(T_FRAMES):
        img_rel = f"{folder}/images/{folder}-{t:04d}.png"
        dep_rel = f"{folder}/depths/{folder}_{t:04d}.geometric.png"
        cv2.imwrite(os.path.join(root, "train", img_rel), frames[t][:, :, ::-1])
        cv2.imwrite(os.path.join(root, "train", dep_rel), z16[t].view(np.uint16))
        w2c = np.linalg.inv(c2ws[t])
        R_view = flip @ w2c[:3, :3]                            # column form X_view = R_view X_world + T
        annots.append({
            "sequence_name": seq, "frame_number": t, "frame_timestamp": t / 30.0, "camera_name": "left",
            "image": {"path": img_rel, "size": [H, W]},
            "depth": {"path": dep_rel, "scale_adjustment": 1.0, "mask_path": None},
            "mask": {"path": f"{folder}/masks/{folder}-{t:04d}.png", "mass": 1.0},
            "viewpoint": {"R": R_view.T.tolist(), "T": (flip @ w2c[:3, 3]).tolist(), "focal_length": focal,
                          "principal_point": pp, "intrinsics_format": "ndc_isotropic"}})
    with gzip.open(os.path.join(root, "train", "frame_annotations_train.jgz"), "wt", encoding="utf8") as f:
        json.dump(annots[::-1], f)                              # file order is not frame order
    return {f"train/{seq}/left": Truth(frames, z16.astype(np.float32), np.stack([K] * T_FRAMES), np.stack(c2ws))}


# -- Hypersim -------------------------------------------------------------------------------------------------------

def write_hypersim(root: str, seed: int = 7) -> dict[str, Truth]:
    """ai_001_001/cam_00: tonemap.jpg frames, float16 ray-distance depth_meters.hdf5 (NaN where there is no
    surface), keyframe positions in inches (meters_per_asset_unit 0.0254) and OpenGL orientations, and a
    metadata_camera_parameters.csv with an off-centre (tilt-shift) OpenGL projection."""
    import h5py

    H, W = 30, 40
    K = K_of(36.0, 36.0, 20.5, 14.0)
    m_per_unit = 0.0254
    scene = static_scene(seed)
    c2ws = path_poses(scene)
    frames, z = render(scene, K, H, W, c2ws)
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    ray = np.sqrt(((u - K[0, 2]) / K[0, 0]) ** 2 + ((v - K[1, 2]) / K[1, 1]) ** 2 + 1)
    dist16 = np.where(z > 0, z * ray, np.nan).astype(np.float16)
    sc = os.path.join(root, "ai_001_001")
    prev = _mkdir(sc, "images", "scene_cam_00_final_preview")
    geo = _mkdir(sc, "images", "scene_cam_00_geometry_hdf5")
    cam = _mkdir(sc, "_detail", "cam_00")
    for t in range(T_FRAMES):
        _rgb(os.path.join(prev, f"frame.{t:04d}.tonemap.jpg"), frames[t])
        with h5py.File(os.path.join(geo, f"frame.{t:04d}.depth_meters.hdf5"), "w") as h:
            h.create_dataset("dataset", data=dist16[t])
    gl = np.diag([1.0, -1.0, -1.0])                             # OpenGL camera: x right, y up, z backward
    with h5py.File(os.path.join(cam, "camera_keyframe_positions.hdf5"), "w") as h:
        h.create_dataset("dataset", data=np.stack([c[:3, 3] / m_per_unit for c in c2ws]))
    with h5py.File(os.path.join(cam, "camera_keyframe_orientations.hdf5"), "w") as h:
        h.create_dataset("dataset", data=np.stack([c[:3, :3] @ gl for c in c2ws]))
    with open(os.path.join(sc, "_detail", "metadata_scene.csv"), "w") as f:
        f.write(f"parameter_name,parameter_value\nmeters_per_asset_unit,{m_per_unit}\n")
    with open(os.path.join(sc, "_detail", "metadata_cameras.csv"), "w") as f:
        f.write("camera_name\ncam_00\n")
    near, far = 1.0, 1000.0                                     # u = (x_ndc + 1) W/2 in continuous pixels
    M = np.array([[2 * K[0, 0] / W, 0, 1 - 2 * (K[0, 2] + 0.5) / W, 0],
                  [0, 2 * K[1, 1] / H, 2 * (K[1, 2] + 0.5) / H - 1, 0],
                  [0, 0, -(far + near) / (far - near), -2 * far * near / (far - near)], [0, 0, -1, 0]])
    cols = ["scene_name", "settings_output_img_width", "settings_output_img_height"] + [
        f"M_proj_{i}{j}" for i in range(4) for j in range(4)]
    with open(os.path.join(root, "metadata_camera_parameters.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        w.writerow(["ai_001_001", W, H] + [repr(float(x)) for x in M.reshape(-1)])
    depth = np.where(np.isfinite(dist16), dist16.astype(np.float64) / ray, 0).astype(np.float32)
    return {"ai_001_001/cam_00": Truth(frames, depth, np.stack([K] * T_FRAMES), np.stack(c2ws), lossy_frames=True)}


WRITERS = {"vkitti2": write_vkitti2, "tartanair": write_tartanair, "pointodyssey": write_pointodyssey,
           "irs": write_irs, "spring": write_spring, "dynamic-replica": write_dynamic_replica,
           "hypersim": write_hypersim}
