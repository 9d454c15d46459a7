"""The metric fine-tuning loss: SiLog against a hand-computed value and a re-statement of Depth Anything V2's
`SiLogLoss` formula (published `metric_depth/util/loss.py`), float64 gradients, and the unaligned metric TGM."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vda_lightning.losses import MetricDepthLoss, align_scale_shift, metric_valid_mask, silog_loss, tgm_loss


def dav2_silog(pred: np.ndarray, target: np.ndarray, mask: np.ndarray, lambd: float = 0.5) -> float:
    """DAv2's formula, stated independently in numpy float64: pooled over every masked pixel of the batch,
    sqrt(mean(d^2) - lambd * mean(d)^2) with d = log(target) - log(pred); no epsilon anywhere."""
    d = np.log(target[mask].astype(np.float64)) - np.log(pred[mask].astype(np.float64))
    return float(np.sqrt(np.mean(d * d) - lambd * np.mean(d) ** 2))


def test_silog_by_hand():
    pred, target = torch.tensor([1.0, 2.0, 5.0]), torch.tensor([2.0, 2.0, 7.0])
    mask = torch.tensor([True, True, False])
    # d = (ln 2, 0): mean d^2 = ln2^2 / 2, mean d = ln2 / 2 -> sqrt(ln2^2 (1/2 - 1/8)) = ln2 sqrt(3/8)
    assert silog_loss(pred, target, mask).item() == pytest.approx(math.log(2) * math.sqrt(3 / 8), abs=1e-7)
    # lambd 1: the plain standard deviation of d (scale-invariant): a global factor costs nothing
    assert silog_loss(3 * target, target, torch.ones(3, dtype=torch.bool), lambd=1.0).item() == pytest.approx(
        0.0, abs=1e-3)


def test_silog_matches_the_published_formula():
    rng = np.random.default_rng(0)
    target = rng.uniform(0.5, 80.0, (2, 3, 9, 11)).astype(np.float32)
    pred = (target * rng.lognormal(0.1, 0.3, target.shape)).astype(np.float32)
    mask = rng.random(target.shape) > 0.2
    for lambd in (0.5, 0.85, 0.0):
        ours = silog_loss(torch.from_numpy(pred), torch.from_numpy(target), torch.from_numpy(mask), lambd).item()
        assert abs(ours - dav2_silog(pred, target, mask, lambd)) <= 1e-6, lambd
    # the floor: ReLU outputs at 0 enter as 1e-3 m (the published head never outputs 0)
    pred[0, 0, 0, 0] = 0.0
    ours = silog_loss(torch.from_numpy(pred), torch.from_numpy(target), torch.from_numpy(mask)).item()
    assert math.isfinite(ours)
    assert abs(ours - dav2_silog(np.maximum(pred, 1e-3), target, mask)) <= 1e-6


def test_silog_gradcheck_float64_and_empty_mask():
    g = torch.Generator().manual_seed(1)
    pred = (torch.rand(1, 2, 3, 4, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
    target = torch.rand(1, 2, 3, 4, generator=g, dtype=torch.float64) * 5 + 0.5
    mask = torch.rand(1, 2, 3, 4, generator=g) > 0.3
    assert torch.autograd.gradcheck(lambda p: silog_loss(p, target, mask), (pred,), eps=1e-6, atol=1e-8)
    empty = silog_loss(pred, target, torch.zeros_like(mask))
    assert empty.item() == 0.0 and empty.requires_grad


def test_valid_range_is_inclusive_as_dav2_train():
    target = torch.tensor([0.0005, 0.001, 5.0, 80.0, 80.5])
    assert metric_valid_mask(target, None, 1e-3, 80.0).tolist() == [False, True, True, True, False]
    assert metric_valid_mask(target, torch.tensor([1, 1, 0, 1, 1]).bool(), 1e-3, None).tolist() == [
        False, True, False, True, True]


def test_metric_loss_tgm_is_unaligned_and_weighted():
    g = torch.Generator().manual_seed(2)
    target = torch.rand(2, 4, 6, 7, generator=g) * 20 + 1
    mask = torch.rand(2, 4, 6, 7, generator=g) > 0.1
    loss = MetricDepthLoss(tgm_weight=3.0, max_depth=None)
    # twice the depth: SiLog (lambd 0.5) sees the log scale; TGM sees the doubled temporal differences, which an
    # aligned TGM would remove
    out = loss(2 * target, target, mask)
    expected_tgm = tgm_loss(2 * target, target, mask)
    assert out["stable_loss"].item() == pytest.approx(3.0 * expected_tgm.item(), rel=1e-6)
    assert expected_tgm.item() > 0.1
    assert tgm_loss(align_scale_shift(2 * target, target, mask), target, mask).item() < 1e-3
    assert out["silog_loss"].item() == pytest.approx(math.sqrt(0.5) * math.log(2), rel=1e-5)
    assert out["total_loss"].item() == pytest.approx(out["silog_loss"].item() + out["stable_loss"].item())
    one_frame = loss(2 * target[:, :1], target[:, :1], mask[:, :1])
    assert one_frame["stable_loss"].item() == 0.0  # images: no temporal term
    with pytest.raises(ValueError, match="B, T, H, W"):
        loss(target[0], target[0], mask[0])
