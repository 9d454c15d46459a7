"""Synthetic scenes: exact depth against hand-computed planes, geometric consistency of depth/K/poses,
determinism per seed, and resumable shard generation."""
from __future__ import annotations

import os

import numpy as np

from vda_lightning.data import generate_synthetic_shards, read_index
from vda_lightning.scenes import intrinsics, random_scene, render_clip, render_frame


def empty_room_scene(eye, target):
    scene = random_scene(np.random.default_rng(0))
    scene["objects"] = []
    scene["room"] = np.array([-5.0, 0.0, -4.0, 5.0, 50.0, 10.0])  # tall walls: no sky in view
    scene["cam"] = dict(eye0=np.array(eye, float), vel=np.zeros(3), target0=np.array(target, float), sway=0.0,
                        sway_freq=0.0)
    return scene


def test_depth_of_floor_and_back_wall_by_hand():
    H, W = 24, 32
    K = intrinsics(H, W, 60.0)
    scene = empty_room_scene([0, 1.5, 0], [0, 1.5, 1])  # looking straight down +z, 10 m from the back wall
    _, depth, c2w = render_frame(scene, 0, K, H, W)
    assert np.allclose(c2w[:3, 2], [0, 0, 1]) and np.allclose(c2w[:3, 1], [0, -1, 0])
    # the centre ray hits the back wall z = 10: z-depth 10
    yc, xc = H // 2 - 1, W // 2
    assert np.isclose(depth[yc, xc], 10.0)
    # a pixel below the horizon hits the floor: the ray (x, y, 1) drops y per unit of z, so z = 1.5 / y
    v = H - 1
    y = (v - K[1, 2]) / K[1, 1]
    assert np.isclose(depth[v, xc], min(1.5 / y, 10.0))


def test_depth_K_and_poses_agree_between_frames():
    """Back-project frame 0 with its depth, K and pose, move to frame 1: the depths must match (static scene)."""
    H, W = 48, 64
    clip = render_clip([5, 1, 0], 2, H, W)
    scene = random_scene(np.random.default_rng([5, 1, 0]))
    assert scene["hfov"] > 0
    K, poses, depth = clip["K"], clip["poses"], clip["depth"]
    if any(np.any(o["vel"]) or o.get("spin", 0) for o in scene["objects"]):
        # moving objects would not agree; re-render the same camera without objects to test the geometry alone
        s = random_scene(np.random.default_rng([5, 1, 0]))
        s["objects"] = []
        frames = [render_frame(s, t, K, H, W) for t in range(2)]
        depth = np.stack([f[1] for f in frames])
        poses = np.stack([f[2] for f in frames])
    vs, us = np.nonzero(depth[0] > 0)
    z = depth[0][vs, us]
    pts_cam = np.stack([(us - K[0, 2]) / K[0, 0] * z, (vs - K[1, 2]) / K[1, 1] * z, z, np.ones_like(z)])
    p1 = np.linalg.inv(poses[1]) @ poses[0] @ pts_cam
    u1 = np.rint(K[0, 0] * p1[0] / p1[2] + K[0, 2]).astype(int)
    v1 = np.rint(K[1, 1] * p1[1] / p1[2] + K[1, 2]).astype(int)
    inside = (u1 >= 0) & (u1 < W) & (v1 >= 0) & (v1 < H) & (p1[2] > 0)
    d1 = depth[1][v1[inside], u1[inside]]
    ok = d1 > 0
    rel = np.abs(d1[ok] - p1[2][inside][ok]) / d1[ok]
    assert inside.mean() > 0.5 and np.median(rel) < 0.01 and (rel < 0.05).mean() > 0.85


def test_deterministic_per_seed_and_varied():
    a, b, c = render_clip([1, 1, 3], 3, 20, 28), render_clip([1, 1, 3], 3, 20, 28), render_clip([2, 1, 3], 3, 20, 28)
    for k in ("frames", "depth", "poses", "K"):
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["frames"], c["frames"])
    assert not np.array_equal(a["frames"][0], a["frames"][2])  # the camera moves
    # rich enough to learn from: textured (many colours) and a wide depth range
    assert len(np.unique(a["frames"][0].reshape(-1, 3), axis=0)) > 50
    valid = a["depth"][a["depth"] > 0]
    assert valid.max() / valid.min() > 3


def test_generation_skips_complete_shards_and_is_reproducible(tmp_path):
    kw = dict(n_train_clips=3, n_val_clips=1, clip_len=2, height=14, width=28, seed=4, clips_per_shard=2,
              n_image_samples=2, progress=False)
    out = generate_synthetic_shards(str(tmp_path), **kw)
    assert [len(out[k]) for k in ("train", "val", "image")] == [2, 1, 1]
    assert read_index(out["train"][0])["num_samples"] == 2 and read_index(out["train"][1])["num_samples"] == 1
    assert read_index(out["image"][0])["sample_types"] == {"image": 2}
    before = {p: (os.path.getmtime(p), open(p, "rb").read()) for p in out["train"]}
    os.remove(out["train"][1].replace(".tar", ".index.json"))  # an interrupted shard: no index
    generate_synthetic_shards(str(tmp_path), **kw)
    assert os.path.getmtime(out["train"][0]) == before[out["train"][0]][0]  # complete: not rewritten
    assert open(out["train"][1], "rb").read() == before[out["train"][1]][1]  # rewritten to the same bytes
