"""Procedural synthetic video scenes with exact z-depth, K and camera-to-world poses (the embedded default data).

Each clip is a fresh random scene: a room without a ceiling (textured floor and walls, open sky above, which has no
depth), several textured boxes (rotated about the vertical) and spheres, some of them moving, seen by a camera
that moves and turns smoothly. Rendering is numpy ray casting: a pixel's ray is X(t) = eye + t * R @ d with
d = ((u - cx)/fx, (v - cy)/fy, 1), so the ray parameter t at the first hit IS the z-depth. Shading: Lambert with a
per-scene light, procedural textures, and a light depth fog (a monocular cue a small model can pick up).
World axes: y up; camera axes: OpenCV (x right, y down, z forward).

It imports nothing of the package: the DataModule writes these clips as shards (`data/synthetic_scenes.py`),
the checkpoint kind probe (`checkpoints/kind.py`) and the data bench render them directly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SKY = -1  # surface id of rays that leave the room upwards: no depth (masked out)


def intrinsics(height: int, width: int, hfov_deg: float) -> np.ndarray:
    """Pinhole K with square pixels, principal point at the image centre (pixel centres at integer coords)."""
    fx = (width / 2) / np.tan(np.radians(hfov_deg) / 2)
    return np.array([[fx, 0, (width - 1) / 2], [0, fx, (height - 1) / 2], [0, 0, 1]], dtype=np.float64)


def look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """Camera-to-world 4x4 with OpenCV camera axes: columns right, down, forward."""
    f = target - eye
    f = f / np.linalg.norm(f)
    up = np.asarray(up, dtype=np.float64)
    down = -(up - up.dot(f) * f)
    down /= np.linalg.norm(down)
    right = np.cross(down, f)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, f, eye
    return c2w


@dataclass
class Hit:
    """Nearest intersection so far for every ray (flattened pixels)."""

    t: np.ndarray        # z-depth (inf = nothing hit)
    surface: np.ndarray  # int id into the scene's material list, SKY for sky
    normal: np.ndarray   # (N, 3) world normal
    uv: np.ndarray       # (N, 2) texture coordinates

    def update(self, t, surface, normal, uv):
        closer = t < self.t
        self.t = np.where(closer, t, self.t)
        self.surface = np.where(closer, surface, self.surface)
        self.normal = np.where(closer[:, None], normal, self.normal)
        self.uv = np.where(closer[:, None], uv, self.uv)


def hit_room(o: np.ndarray, d: np.ndarray, room: np.ndarray) -> Hit:
    """Rays from inside the box room [x0,x1]x[0,top]x[z0,z1]: exit point; upward exits are sky."""
    lo, hi = room[:3], room[3:]
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = np.where(d > 0, hi, lo)
        t_axis = np.where(d != 0, (bound - o) / d, np.inf)
    axis = np.argmin(t_axis, axis=1)
    t = t_axis[np.arange(len(d)), axis]
    p = o + t[:, None] * d
    sign = np.sign(d[np.arange(len(d)), axis])
    normal = np.zeros_like(d)
    normal[np.arange(len(d)), axis] = -sign
    # surface ids: 0 floor, 1 walls of x, 2 walls of z; sky above
    surface = np.select([axis == 1, axis == 0], [0, 1], 2)
    surface = np.where((axis == 1) & (d[:, 1] > 0), SKY, surface)
    uv = np.stack([np.where(axis == 0, p[:, 2], p[:, 0]), np.where(axis == 1, p[:, 2], p[:, 1])], 1)
    return Hit(np.where(surface == SKY, np.inf, t), surface, normal, uv)


def hit_box(o, d, center, half, yaw):
    """Slab test against a box rotated by `yaw` about the vertical; returns (t, normal, uv)."""
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])      # local -> world
    ol, dl = (o - center) @ rot, d @ rot                      # world -> local (rot is orthonormal)
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (-half - ol) / dl, (half - ol) / dl
    tmin, tmax = np.minimum(t1, t2), np.maximum(t1, t2)
    tmin = np.nan_to_num(tmin, nan=-np.inf)
    tmax = np.nan_to_num(tmax, nan=np.inf)
    axis = np.argmax(tmin, axis=1)
    tnear, tfar = tmin.max(1), tmax.min(1)
    ok = (tnear <= tfar) & (tnear > 1e-6)
    idx = np.arange(len(d))
    n_local = np.zeros_like(d)
    n_local[idx, axis] = -np.sign(dl[idx, axis])
    pl = ol + tnear[:, None] * dl
    u = np.where(axis == 0, pl[:, 2], pl[:, 0])
    v = np.where(axis == 1, pl[:, 2], pl[:, 1])
    return np.where(ok, tnear, np.inf), n_local @ rot.T, np.stack([u, v], 1)


def hit_sphere(o, d, center, radius):
    oc = o - center
    a = (d * d).sum(1)
    b = 2 * (oc * d).sum(1)
    c = (oc * oc).sum() - radius**2
    disc = b * b - 4 * a * c
    sq = np.sqrt(np.maximum(disc, 0))
    t = (-b - sq) / (2 * a)
    ok = (disc >= 0) & (t > 1e-6)
    t = np.where(ok, t, np.inf)
    p = o + np.where(ok, t, 0)[:, None] * d
    n = (p - center) / radius
    uv = np.stack([np.arctan2(n[:, 0], n[:, 2]) * radius * 2, np.arcsin(np.clip(n[:, 1], -1, 1)) * radius * 2], 1)
    return t, n, uv


def random_scene(rng: np.random.Generator) -> dict:
    """Room, objects, materials, light and camera path of one clip (all random, all from `rng`)."""
    half_w, depth = rng.uniform(4, 8), rng.uniform(14, 24)
    room = np.array([-half_w, 0.0, -4.0, half_w, rng.uniform(3, 7), depth])
    objects = []
    for _ in range(rng.integers(3, 7)):
        size = rng.uniform(0.3, 1.3, 3)
        pos = np.array([rng.uniform(-half_w + 1, half_w - 1), size[1], rng.uniform(3, depth - 2)])
        objects.append(dict(kind="box", center=pos, half=size, yaw=rng.uniform(0, np.pi),
                            vel=rng.normal(0, 0.03, 3) * [1, 0, 1] * rng.integers(0, 2), spin=rng.normal(0, 0.03)))
    for _ in range(rng.integers(2, 5)):
        r = rng.uniform(0.3, 1.2)
        pos = np.array([rng.uniform(-half_w + 1, half_w - 1), r + rng.uniform(0, 1.5), rng.uniform(3, depth - 2)])
        objects.append(dict(kind="sphere", center=pos, radius=r, vel=rng.normal(0, 0.05, 3) * rng.integers(0, 2)))
    n_mat = 3 + len(objects)
    materials = dict(
        c1=rng.uniform(0.15, 0.95, (n_mat, 3)), c2=rng.uniform(0.05, 0.8, (n_mat, 3)),
        freq=rng.uniform(1.0, 4.0, n_mat), pattern=rng.integers(0, 3, n_mat), phase=rng.uniform(0, 6.3, (n_mat, 4)))
    light = rng.normal(0, 1, 3) + [0, 2.5, -1]
    eye0 = np.array([rng.uniform(-half_w / 2, half_w / 2), rng.uniform(1.0, 2.5), rng.uniform(-3, 0)])
    cam = dict(eye0=eye0, vel=np.array([rng.normal(0, 0.06), rng.normal(0, 0.01), rng.uniform(0.02, 0.12)]),
               target0=np.array([rng.uniform(-2, 2), rng.uniform(0.3, 1.5), depth * rng.uniform(0.4, 0.8)]),
               sway=rng.uniform(0, 0.6), sway_freq=rng.uniform(0.05, 0.2))
    return dict(room=room, objects=objects, materials=materials, light=light / np.linalg.norm(light), cam=cam,
                hfov=rng.uniform(50, 75), fog=rng.uniform(25, 60), sky=rng.uniform(0.5, 1.0, 3))


def camera_pose(cam: dict, t: int) -> np.ndarray:
    eye = cam["eye0"] + cam["vel"] * t
    target = cam["target0"] + np.array([np.sin(cam["sway_freq"] * t) * cam["sway"] * 4, 0, 0])
    return look_at(eye, target)


def texture(mat: dict, ids: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Per-pixel pattern in [0, 1]: checker, stripes or wavy blobs, each with a low-frequency variation."""
    f, ph = mat["freq"][ids], mat["phase"][ids]
    u, v = uv[:, 0] * f, uv[:, 1] * f
    checker = (np.floor(u) + np.floor(v)) % 2
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * u + ph[:, 0])
    blobs = 0.5 + 0.25 * (np.sin(u * 1.7 + ph[:, 1]) + np.sin(v * 2.3 + np.sin(u) + ph[:, 2]))
    pat = np.choose(mat["pattern"][ids], [checker, stripes, blobs])
    return np.clip(0.8 * pat + 0.2 * (0.5 + 0.5 * np.sin(0.7 * u + 0.9 * v + ph[:, 3])), 0, 1)


def render_frame(scene: dict, t: int, K: np.ndarray, height: int, width: int, c2w: np.ndarray | None = None):
    """(rgb uint8 (H,W,3), z-depth float32 (H,W) with 0 for sky, c2w (4,4)) of frame t of a scene, seen from the
    scene's camera path or from `c2w` (camera-to-world, OpenCV axes) when given."""
    c2w = camera_pose(scene["cam"], t) if c2w is None else np.asarray(c2w, np.float64)
    vs, us = np.mgrid[0:height, 0:width]
    d_cam = np.stack([(us - K[0, 2]) / K[0, 0], (vs - K[1, 2]) / K[1, 1], np.ones_like(us, float)], -1)
    d = d_cam.reshape(-1, 3) @ c2w[:3, :3].T
    o = c2w[:3, 3]
    hit = hit_room(o[None], d, scene["room"])
    for i, ob in enumerate(scene["objects"]):
        center = ob["center"] + ob["vel"] * t
        if ob["kind"] == "box":
            th, n, uv = hit_box(o, d, center, ob["half"], ob["yaw"] + ob["spin"] * t)
        else:
            th, n, uv = hit_sphere(o, d, center, ob["radius"])
        hit.update(th, np.full(len(d), 3 + i), n, uv)
    sky = hit.surface == SKY
    ids = np.where(sky, 0, hit.surface)
    mat = scene["materials"]
    pat = texture(mat, ids, hit.uv)[:, None]
    albedo = mat["c1"][ids] * pat + mat["c2"][ids] * (1 - pat)
    shade = 0.35 + 0.65 * np.clip((hit.normal * scene["light"]).sum(1), 0, 1)
    fog = np.exp(-np.where(sky, 0, hit.t) / scene["fog"])[:, None]
    rgb = albedo * shade[:, None] * fog + (1 - fog) * 0.7
    rgb = np.where(sky[:, None], scene["sky"] * (0.8 + 0.2 * (vs.reshape(-1, 1) / height)), rgb)
    depth = np.where(sky, 0.0, hit.t).astype(np.float32).reshape(height, width)
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8).reshape(height, width, 3), depth, c2w


def render_clip(seed_seq: list[int], clip_len: int, height: int, width: int, frame_step: int = 1) -> dict:
    """Frames, depth (0 = sky), mask, K and poses of one random clip; a pure function of `seed_seq`."""
    rng = np.random.default_rng(seed_seq)
    scene = random_scene(rng)
    K = intrinsics(height, width, scene["hfov"])
    frames, depths, poses = [], [], []
    for i in range(clip_len):
        rgb, depth, c2w = render_frame(scene, i * frame_step, K, height, width)
        frames.append(rgb)
        depths.append(depth)
        poses.append(c2w)
    depth = np.stack(depths)
    return dict(frames=np.stack(frames), depth=depth, mask=depth > 0, K=K, poses=np.stack(poses))
