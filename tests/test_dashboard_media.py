"""Dashboard pictures and loop measurements as pure functions, against hand-built cases."""

import numpy as np
import pytest
import torch

from vda_lightning.dashboards import render as media
from vda_lightning.dashboards.training_dashboard import batch_sizes, wait_fraction
from vda_lightning.viz import colorize

T, H, W = 6, 20, 30


def _scene():
    """A ramp in depth (1..5 m) with a near square, plus mid-grey frames."""
    depth = np.tile(np.linspace(1.0, 5.0, H)[:, None], (T, 1, W))
    depth[:, 5:10, 10:20] = 0.8
    frames = np.full((T, 3, H, W), 0.5, np.float32)
    return frames, depth


def _panels(image, count, widths=None):
    """Split a row of panels separated by GAP-pixel gaps (below the label strip); equal widths by default."""
    body = image[media.LABEL_HEIGHT:]
    widths = widths or [(body.shape[1] - media.GAP * (count - 1)) // count] * count
    out, x = [], 0
    for width in widths:
        out.append(body[:, x:x + width])
        x += width + media.GAP
    assert x - media.GAP == body.shape[1]
    return out


def test_affine_prediction_aligns_exactly_to_ground_truth():
    frames, depth = _scene()
    pred = 3.0 / depth + 0.25  # a scale and shift away from GT disparity: one fit per clip recovers it
    pics = media.clip_pictures(frames, pred, depth, max_side=64)
    inp, pr, gt, err = _panels(pics["compare"], 4)
    assert np.array_equal(pr, gt)  # same colours after alignment
    assert np.array_equal(err, np.broadcast_to(colorize(np.zeros(1), *media.ERROR_RANGE, "magma")[0], err.shape))
    assert pics["abs_rel"] == pytest.approx(0.0, abs=1e-6)  # float32 prediction
    assert np.all(inp == 128)  # 0.5 grey → 128
    assert len(pics["video"]) == T and pics["video"][0].shape == (H, 3 * W + 2 * media.GAP, 3)


def test_clip_abs_rel_matches_hand_computation():
    frames, depth = _scene()
    pred = 1.0 / depth
    pred[:, :, :W // 2] *= 1.1  # left half 10 % too near after a clip-wide fit is impossible to undo exactly
    aligned, gt_disp, _, _ = media.clip_disparities(pred, depth, None)
    expected = np.mean(np.abs(gt_disp / aligned - 1.0))
    assert media.clip_pictures(frames, pred, depth)["abs_rel"] == pytest.approx(expected)
    assert 0.0 < expected < 0.1


def test_invalid_ground_truth_is_black_and_prediction_without_gt_has_two_panels():
    frames, depth = _scene()
    depth[:, :3] = 0.0  # no GT in the top rows (sky)
    pics = media.clip_pictures(frames, 1.0 / np.maximum(depth, 0.5), depth)
    gt = _panels(pics["compare"], 4)[2]
    black = colorize(np.zeros(1), 0, 1)[0]
    assert np.all(gt[:3] == black)
    only_pred = media.clip_pictures(frames, 1.0 / np.maximum(depth, 0.5), None)
    assert only_pred["abs_rel"] is None
    assert only_pred["compare"].shape[1] == 2 * W + media.GAP


def test_temporal_profile_shows_flicker_as_changing_columns():
    frames, depth = _scene()
    stable = media.clip_pictures(frames, 1.0 / depth, depth)["profile"]
    flicker_pred = (1.0 / depth) * np.array([1.0, 1.3] * (T // 2))[:, None, None]
    flicker = media.clip_pictures(frames, flicker_pred, depth)["profile"]
    repeat = 16  # each frame's column is widened to reach the 96-pixel minimum: ceil(96 / 6)
    widths = [W, T * repeat, T * repeat]
    pred_stable = _panels(stable, 3, widths)[1]
    pred_flicker = _panels(flicker, 3, widths)[1]
    # stable depth: every time step looks alike; flicker: frames 0 and 1 differ
    assert np.array_equal(pred_stable[:, 0], pred_stable[:, repeat])
    assert not np.array_equal(pred_flicker[:, 0], pred_flicker[:, repeat])
    # the marked column in the input panel
    inp = _panels(stable, 3, widths)[0]
    assert np.all(inp[:, W // 2] == (0, 255, 255))


def test_panels_are_shrunk_to_max_side_and_bad_shapes_are_named():
    frames, depth = _scene()
    pics = media.clip_pictures(np.repeat(np.repeat(frames, 10, -1), 10, -2),
                               np.repeat(np.repeat(1.0 / depth, 10, -1), 10, -2),
                               np.repeat(np.repeat(depth, 10, -1), 10, -2), max_side=60)
    assert pics["video"][0].shape[0] == 40  # 200×300 → 40×60
    tiny = media.clip_pictures(frames, 1.0 / depth, depth, min_side=100)  # 20×30 → ×4 (whole factor) = 80×120
    assert tiny["video"][0].shape[:2] == (80, 3 * 120 + 2 * media.GAP)
    assert np.array_equal(tiny["video"][0][:4, :4], np.broadcast_to(tiny["video"][0][0, 0], (4, 4, 3)))
    with pytest.raises(ValueError, match=r"frames \(6, 20, 30\) and prediction \(6, 20, 29\)"):
        media.clip_pictures(frames, np.ones((T, H, W - 1)), depth)


def test_wait_fraction_and_batch_sizes():
    assert wait_fraction([0.1, 0.3], [0.9, 0.7]) == pytest.approx(0.2)
    assert wait_fraction([], []) == 0.0
    batch = {"video": {"frames": torch.zeros(2, 4, 3, 8, 8)}, "image": {"frames": torch.zeros(3, 1, 3, 8, 8)}}
    assert batch_sizes(batch) == (5, 11)
    assert batch_sizes({"frames": torch.zeros(1, 7, 3, 8, 8)}) == (1, 7)
    assert batch_sizes({"video": None, "image": {"frames": torch.zeros(3, 1, 3, 8, 8)}}) == (3, 3)
