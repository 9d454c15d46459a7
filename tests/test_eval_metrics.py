"""Hand-computed cases for the protocol's math and the torchmetrics wrappers."""
import math

import numpy as np
import pytest
import torch

from vda_lightning.evaluation import (
    DepthMetrics,
    TAEMetric,
    fit_disparity_scale_shift,
    reprojection_error,
    sequence_depth_metrics,
    sequence_tae,
)


def test_perfect_prediction_up_to_scale_and_shift():
    gt = torch.rand(3, 6, 7, dtype=torch.float64) * 4 + 0.5
    gt[0, 0, 0] = 0.0  # missing GT pixel must not matter
    pred = (3.0 / gt.clamp_min(0.5) + 0.2).float()
    scores = sequence_depth_metrics(pred, gt, max_depth=10.0)
    assert scores["abs_rel"] < 1e-6 and scores["rmse"] < 1e-5
    assert scores["delta1"] == 1.0 and scores["frames"] == 3


def test_three_pixel_case_by_hand():
    # gt depth [1, 2, 2] → gt disparity [1, .5, .5]; pred [1, 2, 3] → fit s = -1/4, t = 7/6
    # aligned disparity [11/12, 2/3, 5/12] → depth [12/11, 1.5, 2.4]
    gt = torch.tensor([[[1.0, 2.0, 2.0]]], dtype=torch.float64)
    pred = torch.tensor([[[1.0, 2.0, 3.0]]])
    s, t = fit_disparity_scale_shift(pred, gt, torch.ones_like(gt, dtype=torch.bool))
    # gt disparity carries the +1e-8 of the published fit
    assert float(s) == pytest.approx(-0.25, abs=1e-7) and float(t) == pytest.approx(7 / 6, abs=1e-7)
    scores = sequence_depth_metrics(pred, gt, max_depth=10.0)
    assert scores["abs_rel"] == pytest.approx((1 / 11 + 0.25 + 0.2) / 3, rel=1e-7)
    assert scores["rmse"] == pytest.approx(math.sqrt(((1 / 11) ** 2 + 0.25 + 0.16) / 3), rel=1e-7)
    assert scores["delta1"] == pytest.approx(2 / 3)  # ratios 1.09 ✓, 1.33 ✗, 1.2 ✓


def test_fit_matches_numpy_lstsq_and_constant_prediction():
    rng = np.random.default_rng(0)
    pred = rng.uniform(0, 2, (4, 9, 11)).astype(np.float32)
    gt = rng.uniform(0.3, 9, (4, 9, 11))
    valid = gt < 8
    p = np.clip(pred, 1e-3, None)[valid].astype(np.float64)
    A = np.stack([p, np.ones_like(p)], 1)
    expected = np.linalg.lstsq(A, 1 / (gt[valid] + 1e-8), rcond=None)[0]
    s, t = fit_disparity_scale_shift(torch.from_numpy(pred), torch.from_numpy(gt), torch.from_numpy(valid))
    np.testing.assert_allclose([float(s), float(t)], expected, rtol=1e-12)
    const = np.full_like(pred, 0.7)
    expected = np.linalg.lstsq(np.stack([const[valid].astype(np.float64), np.ones(valid.sum())], 1),
                               1 / (gt[valid] + 1e-8), rcond=None)[0]  # minimum-norm solution
    s, t = fit_disparity_scale_shift(torch.from_numpy(const), torch.from_numpy(gt), torch.from_numpy(valid))
    np.testing.assert_allclose([float(s), float(t)], expected, rtol=1e-6)


def test_frames_without_valid_pixels_are_dropped_and_depth_is_capped():
    gt = torch.full((2, 4, 4), 2.0, dtype=torch.float64)
    gt[1] = 50.0  # beyond max_depth: frame 1 has no valid pixel
    pred = torch.full((2, 4, 4), 0.5)
    pred[0, 0, 0] = 1.0  # two values so the fit is exact on frame 0
    scores = sequence_depth_metrics(pred, gt, max_depth=10.0)
    assert scores["frames"] == 1 and scores["abs_rel"] < 1e-7


def test_depth_metrics_mean_over_sequences_and_batches():
    torch.manual_seed(0)
    gts = torch.rand(3, 2, 5, 6, dtype=torch.float64) * 5 + 0.5
    preds = (1 / gts + 0.3 * torch.rand(3, 2, 5, 6, dtype=torch.float64)).float()
    per_seq = [sequence_depth_metrics(p, g, 10.0) for p, g in zip(preds, gts)]
    one_by_one, batched = DepthMetrics(max_depth=10.0), DepthMetrics(max_depth=10.0)
    for p, g in zip(preds, gts):
        one_by_one.update(p, g)
    batched.update(preds, gts)
    for metric in (one_by_one, batched):
        out = metric.compute()
        assert set(out) == {"abs_rel", "delta1", "rmse"}
        for key in out:
            assert float(out[key]) == pytest.approx(np.mean([s[key] for s in per_seq]), rel=1e-12)
    assert [s["abs_rel"] for s in batched.last] == [s["abs_rel"] for s in per_seq]


def test_depth_metrics_extra_valid_mask():
    gt = torch.tensor([[[2.0, 4.0], [1.0, 2.0]]], dtype=torch.float64)
    pred = torch.tensor([[[0.5, 0.9], [1.0, 0.5]]])
    valid = torch.tensor([[[True, False], [True, True]]])  # hides the inconsistent pixel
    # The visible pixels are exactly disparity (s = 1, t = 0); the hidden one would spoil the fit.
    masked, unmasked = DepthMetrics(max_depth=10.0), DepthMetrics(max_depth=10.0)
    masked.update(pred, gt, valid)
    unmasked.update(pred, gt)
    assert float(masked.compute()["abs_rel"]) < 1e-7 and float(masked.compute()["delta1"]) == 1.0
    assert float(unmasked.compute()["abs_rel"]) > 0.01


def _translation(z):
    pose = torch.eye(4, dtype=torch.float64)
    pose[2, 3] = z
    return pose


K = torch.tensor([[20.0, 0, 7.5], [0, 20.0, 5.5], [0, 0, 1]], dtype=torch.float64)


def test_tae_static_scene_is_zero():
    depth = torch.rand(1, 12, 16, dtype=torch.float64).expand(4, 12, 16) + 1.0
    poses = torch.eye(4, dtype=torch.float64).expand(4, 4, 4)
    assert sequence_tae(depth, K, poses) == 0.0


def test_tae_plane_with_camera_moving_forward_by_hand():
    # A fronto-parallel plane 2 m away; the camera moves 0.5 m towards it: frame 2 sees it at 1.5 m.
    poses = torch.stack([_translation(0.0), _translation(0.5)])
    right = torch.stack([torch.full((12, 16), 2.0), torch.full((12, 16), 1.5)]).double()
    assert sequence_tae(right, K, poses) == pytest.approx(0.0, abs=1e-12)
    wrong = right.clone()
    wrong[1] = 1.2
    # forward: plane lands at 1.5 where frame 2 says 1.2 → |1.2-1.5|/1.2 = 0.25;
    # backward: 1.2 + 0.5 = 1.7 where frame 1 says 2 → 0.3/2 = 0.15; TAE = 100·(0.25+0.15)/2
    assert sequence_tae(wrong, K, poses) == pytest.approx(20.0, rel=1e-12)
    # nothing lands inside the image → 0, as published
    R = torch.eye(3, dtype=torch.float64)
    far = torch.tensor([100.0, 0, 0], dtype=torch.float64)
    assert float(reprojection_error(right[0], right[1], R, far, K)) == 0.0


def test_tae_metric_aligns_disparity_and_averages():
    poses = torch.stack([_translation(0.0), _translation(0.5)])
    gt = torch.stack([torch.full((12, 16), 2.0), torch.full((12, 16), 1.5)]).double()
    gt[0, 0, 0] = 2.1  # two distinct depths make the disparity fit well posed
    disparity = (5.0 / gt + 1.0).float()  # affine in disparity: the alignment recovers gt
    wrong = gt.clone()
    wrong[1] = 1.2
    metric = TAEMetric(max_depth=10.0)
    metric.update(disparity, K, poses, gt_depth=gt)
    metric.update(wrong, K.expand(2, 3, 3), poses)  # already metric depth: no alignment
    assert metric.last == [pytest.approx(20.0, rel=1e-9)]
    first = sequence_tae(gt, K, poses)
    assert float(metric.compute()) == pytest.approx((first + 20.0) / 2, rel=1e-5)
    batched = TAEMetric()
    batched.update(wrong[None], K, poses[None])
    assert batched.last == [pytest.approx(20.0, rel=1e-9)]
