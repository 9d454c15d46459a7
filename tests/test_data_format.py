"""Shard format round trips, depth readers, target conversion and the geometry of the augmentation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vda_lightning.data.format import ClipRecord, SampleError, decode_members, encode_record
from vda_lightning.data.transforms import (
    AugmentConfig,
    apply_geometry,
    augment,
    color_matrix,
    crop_resize_K,
    depth_to_target,
    finish_frames,
    flip_K_poses,
    random_crop_box,
)


def make_record(T=3, H=10, W=12, seed=0, **kw) -> ClipRecord:
    rng = np.random.default_rng(seed)
    depth = rng.uniform(0.5, 20.0, (T, H, W)).astype(np.float32)
    mask = rng.random((T, H, W)) > 0.2
    poses = np.stack([np.eye(4)] * T)
    poses[:, :3, 3] = rng.normal(size=(T, 3))
    K = np.array([[30.0, 0, 5.5], [0, 31.0, 4.5], [0, 0, 1]])
    return ClipRecord(rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8), "ds", "seq.1/a", [4, 6, 8][:T],
                      depth=depth, mask=mask, K=K, poses=poses, **kw)


@pytest.mark.parametrize("encoding,tol", [("png16", None), ("f16", 1e-2), ("f32", 0.0), ("f16lz4", 1e-2)])
def test_round_trip_keeps_everything(encoding, tol):
    rec = make_record()
    members = encode_record(rec, depth_encoding=encoding)
    out = decode_members(members)
    np.testing.assert_array_equal(out.frames, rec.frames)  # PNG frames are lossless
    np.testing.assert_array_equal(out.mask, rec.mask)
    np.testing.assert_array_equal(out.K, rec.K)
    np.testing.assert_array_equal(out.poses, rec.poses)
    assert (out.dataset, out.sequence, out.frame_indices) == ("ds", "seq.1/a", [4, 6, 8])
    if encoding == "png16":  # stored = round(depth * scale): error at most half a step
        scale = 65535 / rec.depth.max()
        assert np.abs(out.depth - rec.depth).max() <= 0.5 / scale * 1.0001
    else:
        assert np.abs(out.depth - rec.depth).max() <= tol * 20  # float16: 11-bit mantissa, values up to 20


def test_sixteen_bit_depth_is_not_reduced_to_eight_bits():
    rec = make_record(T=1)
    out = decode_members(encode_record(rec, depth_encoding="png16", depth_scale=1000.0))
    # 8-bit decoding would leave at most 256 levels; millimetre steps over 0.5..20 m leave thousands
    assert len(np.unique(out.depth)) > 100
    assert np.abs(out.depth - rec.depth).max() <= 0.0005 + 1e-6


def test_frame_slice_decodes_only_those_frames():
    rec = make_record()
    out = decode_members(encode_record(rec), slice(1, 3))
    np.testing.assert_array_equal(out.frames, rec.frames[1:3])
    assert out.frame_indices == [6, 8] and out.poses.shape == (2, 4, 4)


def test_non_finite_depth_is_written_as_invalid_and_oversize_depth_refused():
    rec = make_record(T=1)
    rec.depth[0, 0, 0], rec.depth[0, 0, 1] = np.nan, np.inf
    out = decode_members(encode_record(rec, depth_encoding="f32"))
    assert out.depth[0, 0, 0] == 0 and out.depth[0, 0, 1] == 0
    with pytest.raises(ValueError, match="does not fit 16 bits"):
        encode_record(make_record(T=1), depth_scale=65535.0)


def test_decode_reports_a_reason():
    members = encode_record(make_record())
    del members["frame001.png"]
    with pytest.raises(SampleError) as e:
        decode_members(members)
    assert e.value.reason == "missing_member"
    members = encode_record(make_record())
    members["json"] = b"{not json"
    with pytest.raises(SampleError) as e:
        decode_members(members)
    assert e.value.reason == "bad_metadata"


def test_depth_to_target_by_hand():
    depth = torch.tensor([0.5, 2.0, 100.0, 0.0, float("nan"), 4.0])
    mask = torch.tensor([True, True, True, True, True, False])
    disp, gt, valid = depth_to_target(depth, mask, "metric_depth", max_depth=80.0)
    assert valid.tolist() == [True, True, False, False, False, False]
    assert disp.tolist() == [2.0, 0.5, 0, 0, 0, 0] and gt.tolist() == [0.5, 2.0, 0, 0, 0, 0]
    disp, gt, valid = depth_to_target(torch.tensor([0.3, 0.0]), None, "relative_disparity")
    assert disp.tolist() == pytest.approx([0.3, 0.0]) and valid.tolist() == [True, False] and gt.sum() == 0


def test_crop_resize_K_by_hand_and_against_pixels():
    K = torch.tensor([[100.0, 0, 49.5], [0, 100.0, 29.5], [0, 0, 1]], dtype=torch.float64)
    K2 = crop_resize_K(K, (10, 4, 50, 30), (60, 100))  # scale 2 in x and y
    assert K2[0, 0] == 200 and K2[1, 1] == 200
    assert K2[0, 2] == (49.5 - 10 + 0.5) * 2 - 0.5 and K2[1, 2] == (29.5 - 4 + 0.5) * 2 - 0.5
    # the pixel content moves the same way: a marked depth pixel at u=20, v=10 lands on new pixels 20,21 / 12,13
    s = {"frames": torch.zeros(1, 3, 60, 100), "depth": torch.zeros(1, 60, 100), "K": K, "has_K": True,
         "poses": torch.eye(4, dtype=torch.float64)[None]}
    s["depth"][0, 10, 20] = 1
    out = apply_geometry(s, (10, 4, 50, 30), (60, 100), flip=False)
    vs, us = torch.nonzero(out["depth"][0], as_tuple=True)
    assert us.double().mean() == (20 - 10 + 0.5) * 2 - 0.5 and vs.double().mean() == (10 - 4 + 0.5) * 2 - 0.5


def test_flip_keeps_projection_consistent():
    K = torch.tensor([[80.0, 0, 30.0], [0, 80.0, 20.0], [0, 0, 1]], dtype=torch.float64)
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, :3] = torch.linalg.matrix_exp(torch.tensor([[0, -0.2, 0.1], [0.2, 0, -0.3], [-0.1, 0.3, 0]],
                                                       dtype=torch.float64))
    c2w[:3, 3] = torch.tensor([0.5, -0.2, 1.0], dtype=torch.float64)
    X = torch.tensor([0.3, 0.4, 6.0, 1.0], dtype=torch.float64)

    def project(K, c2w, X):
        p = (torch.linalg.inv(c2w) @ X)[:3]
        return (K @ (p / p[2]))[:2]

    W = 64
    K2, poses2 = flip_K_poses(K, c2w[None], W)
    u, v = project(K, c2w, X)
    u2, v2 = project(K2, poses2[0], torch.diag(torch.tensor([-1.0, 1, 1, 1], dtype=torch.float64)) @ X)
    assert torch.allclose(u2, W - 1 - u) and torch.allclose(v2, v)


def test_augmentation_is_the_same_for_every_frame():
    frame = torch.rand(3, 40, 50)
    s = {"frames": frame.repeat(4, 1, 1, 1), "disparity": torch.rand(1, 40, 50).repeat(4, 1, 1),
         "mask": torch.ones(4, 40, 50, dtype=torch.bool), "K": torch.eye(3, dtype=torch.float64),
         "poses": torch.eye(4, dtype=torch.float64).repeat(4, 1, 1), "has_K": True}
    out = augment(s, np.random.default_rng(3), AugmentConfig(hflip=0.5), (28, 42))
    assert out["frames"].shape == (4, 3, 28, 42) and out["disparity"].shape == (4, 28, 42)
    for t in range(1, 4):
        assert torch.equal(out["frames"][t], out["frames"][0]) and torch.equal(out["disparity"][t],
                                                                                out["disparity"][0])


def test_random_crop_box_stays_inside():
    rng = np.random.default_rng(0)
    for _ in range(200):
        x0, y0, w, h = random_crop_box(rng, 37, 91, (14, 28), (0.3, 1.0), (0.7, 1.4))
        assert 0 <= x0 and x0 + w <= 91 and 0 <= y0 and y0 + h <= 37 and w >= 1 and h >= 1


def test_color_matrix_by_hand():
    A, t = color_matrix(0.0, 1.0, 1.0, 0.0)
    assert torch.allclose(A, torch.eye(3, dtype=torch.float64), atol=1e-12) and torch.all(t == 0)
    grey = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)
    A, _ = color_matrix(0.0, 1.0, 0.0, 0.0)  # saturation 0: every channel becomes the luma
    assert torch.allclose(A, torch.ones(3, 1, dtype=torch.float64) * grey)
    A, _ = color_matrix(0.0, 1.0, 1.0, 0.1)  # a hue turn keeps luma and maps grey to grey
    assert torch.allclose(grey @ A, grey, atol=1e-12) and torch.allclose(A.sum(1), torch.ones(3, dtype=torch.float64))
    A, t = color_matrix(0.1, 2.0, 1.0, 0.0)  # contrast around 0.5, then brightness: 0.6 -> 0.5 + 0.2 + 0.1
    u8 = torch.full((1, 3, 1, 1), 153, dtype=torch.uint8)  # 153/255 = 0.6
    assert torch.allclose(finish_frames(u8, A, t), torch.full((1, 3, 1, 1), 0.8), atol=1e-6)
