"""Losses: parity with the published VideoDepthLoss (golden) and hand-computed cases for each quirk."""
from __future__ import annotations

import pytest
import torch

from vda_lightning.losses import (
    DistillationLoss,
    VideoDepthLoss,
    align_scale_shift,
    robust_normalize,
    ssi_loss,
    tgm_loss,
    trimmed_mae,
)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()


@pytest.mark.parametrize("case", ["a", "b"])
def test_video_depth_loss_matches_published(golden_dir, case):
    from safetensors.torch import load_file

    g = load_file(str(golden_dir / "loss_cases.safetensors"))
    pred = g[f"{case}.prediction"].clone().requires_grad_(True)
    target, mask = g[f"{case}.target"], g[f"{case}.mask"].bool()
    out = VideoDepthLoss()(pred, target, mask)
    for key in ("spatial_loss", "stable_loss", "total_loss"):
        assert _rel(out[key].reshape(1), g[f"{case}.{key}"]) < 1e-5, key
    out["total_loss"].backward()
    assert _rel(pred.grad, g[f"{case}.grad_total"]) < 1e-5
    # The stand-alone building blocks with their published stand-alone defaults (trim 0.2, 4 temporal scales
    # for TGM, on the raw prediction; the SSI spatial term as VideoDepthLoss configures it).
    tgm = tgm_loss(pred.detach(), target, mask, trim=0.2, temporal_scales=4)
    assert _rel(tgm.reshape(1), g[f"{case}.tgm_alone"]) < 1e-5
    assert _rel(ssi_loss(pred.detach(), target, mask).reshape(1), g[f"{case}.ssi_alone"]) < 1e-5


def test_robust_normalize_uses_lower_median_with_masked_zeros():
    x = torch.tensor([[[4.0, 8.0, 1.0, 2.0]]])
    mask = torch.tensor([[[1.0, 1.0, 1.0, 0.0]]])
    # masked values [4, 8, 1, 0] -> lower median 1; MAD over valid = (3 + 7 + 0) / 3
    expected = (x - 1.0) / (10.0 / 3.0)
    assert torch.allclose(robust_normalize(x, mask), expected)
    # no valid pixel: median 0, scale 1 (identity)
    assert torch.equal(robust_normalize(x, torch.zeros_like(mask)), x)


def test_trimmed_mae_divides_by_full_count():
    pred, target = torch.tensor([[[0.0, 0.0, 0.0, 0.0, 0.0]]]), torch.tensor([[[1.0, 2.0, 3.0, 4.0, 10.0]]])
    mask = torch.ones_like(pred)
    assert trimmed_mae(pred, target, mask, trim=0.0).item() == pytest.approx(20 / 5)
    assert trimmed_mae(pred, target, mask, trim=0.2).item() == pytest.approx(10 / 5)  # drops the 10, divides by 5
    empty = trimmed_mae(pred.requires_grad_(), target, torch.zeros_like(mask))
    assert empty.item() == 0 and empty.requires_grad


def test_align_scale_shift_recovers_affine_map_and_keeps_gradients():
    pred = torch.rand(2, 3, 5, 5, requires_grad=True)
    target = 3.0 * pred.detach() + 0.5
    aligned = align_scale_shift(pred, target, torch.ones_like(target, dtype=torch.bool))
    assert torch.allclose(aligned, target, atol=1e-4)
    aligned.sum().backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0


def test_tgm_signed_vs_paper_absolute_differences():
    # One pixel, two frames: prediction goes 1 -> 0 (Δp = -1), target 0 -> 1 (Δg = +1, frame range 0 so the
    # code's relative threshold rejects it); a second pixel gives every frame a range of 10.
    pred = torch.tensor([[[[1.0, 0.0]], [[0.0, 0.0]]]])  # (B=1, T=2, H=1, W=2)
    target = torch.tensor([[[[0.0, 10.0]], [[0.2, 10.0]]]])  # Δg = (0.2, 0); thresholds 0.05 * range
    mask = torch.ones_like(target, dtype=torch.bool)
    # code: frame-1 threshold 0.05 * 9.8 = 0.49 -> both pixels valid; |Δp - Δg| = |-1 - 0.2| and |0 - 0| -> 1.2 / 2
    assert tgm_loss(pred, target, mask).item() == pytest.approx(0.6)
    # paper: absolute threshold 0.05 rejects pixel 0 (|Δg| = 0.2); pixel 1 has ||0| - |0|| = 0
    assert tgm_loss(pred, target, mask, variant="paper").item() == pytest.approx(0.0)
    # paper with a loose threshold: ||-1| - |0.2|| = 0.8 and 0 -> mean 0.4 (signed would give 0.6)
    assert tgm_loss(pred, target, mask, threshold=1.0, variant="paper").item() == pytest.approx(0.4)


def test_video_depth_loss_rejects_bad_shapes_and_unknown_variant():
    with pytest.raises(ValueError, match="tgm_variant"):
        VideoDepthLoss(tgm_variant="nope")
    with pytest.raises(ValueError, match=r"\(B, T, H, W\)"):
        VideoDepthLoss()(torch.rand(1, 2, 4, 4), torch.rand(1, 2, 4, 5), torch.ones(1, 2, 4, 4, dtype=torch.bool))


def test_distillation_is_weighted_spatial_loss():
    pred, label = torch.rand(3, 1, 14, 14), torch.rand(3, 1, 14, 14)
    expected = 0.5 * ssi_loss(pred, label, torch.ones_like(pred, dtype=torch.bool))
    assert torch.allclose(DistillationLoss()(pred, label), expected)
    assert DistillationLoss()(pred, 2 * pred + 1).item() == pytest.approx(0.0, abs=1e-6)  # invariant to scale/shift
