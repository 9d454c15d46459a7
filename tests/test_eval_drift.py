"""Drift views of one sequence (`evaluation/drift.py`) on built cases whose answers are known in closed form."""
import numpy as np
import pytest
import torch

from vda_lightning.evaluation.drift import frame_aligned_abs_rel, quarter_means, sequence_drift
from vda_lightning.evaluation.functional import sequence_depth_metrics

MAX_DEPTH = 10.0


@pytest.fixture(scope="module")
def gt():
    rng = np.random.default_rng(27)
    return torch.from_numpy(rng.uniform(1.0, 5.0, (8, 6, 7)))


def test_scale_that_grows_over_time(gt):
    """pred = gt · (1 + 0.05 t): frame t's AbsRel is 0.05 t with no alignment; a per-frame scale removes it."""
    growth = 1.0 + 0.05 * torch.arange(8, dtype=torch.float64)[:, None, None]
    pred = gt * growth
    none = sequence_drift(pred, gt, MAX_DEPTH, alignment="none")
    assert none["abs_rel_sequence_aligned"] == pytest.approx(0.05 * 3.5)
    assert none["abs_rel_frame_aligned"] == pytest.approx(0.05 * 3.5)  # nothing to fit: the same view
    assert none["abs_rel_first_quarter"] == pytest.approx(0.025)     # frames 0, 1
    assert none["abs_rel_last_quarter"] == pytest.approx(0.325)      # frames 6, 7
    scale = sequence_drift(pred, gt, MAX_DEPTH, alignment="scale")
    assert scale["abs_rel_frame_aligned"] == pytest.approx(0.0, abs=1e-12)  # a median scale per frame is exact
    assert scale["abs_rel_sequence_aligned"] > 0.05
    assert scale["abs_rel_sequence_aligned"] == pytest.approx(
        sequence_depth_metrics(pred, gt, MAX_DEPTH, alignment="scale")["abs_rel"], rel=1e-12)


def test_published_protocol_per_frame(gt):
    """Disparity with a drifting scale and shift: one fit per frame is exact, one per sequence is not."""
    t = torch.arange(8, dtype=torch.float64)[:, None, None]
    pred = (1.0 + 0.1 * t) / gt + 0.02 * t
    assert frame_aligned_abs_rel(pred, gt, MAX_DEPTH).abs().max() < 1e-7  # the fit's 1e-8 on GT depth
    drift = sequence_drift(pred, gt, MAX_DEPTH)
    assert drift["abs_rel_sequence_aligned"] == pytest.approx(sequence_depth_metrics(pred, gt, MAX_DEPTH)["abs_rel"],
                                                              rel=1e-12)
    assert drift["abs_rel_sequence_aligned"] > 100 * drift["abs_rel_frame_aligned"]
    consistent = sequence_drift(2.0 / gt + 0.3, gt, MAX_DEPTH)  # one affine map for every frame: no drift
    assert consistent["abs_rel_sequence_aligned"] == pytest.approx(consistent["abs_rel_frame_aligned"], abs=1e-7)


def test_quarters_and_holes(gt):
    assert quarter_means(torch.tensor([1.0, 2.0, 3.0])) == (1.0, 3.0)  # ⌈3/4⌉ = 1 frame each end
    assert quarter_means(torch.arange(9, dtype=torch.float64)) == (1.0, 7.0)  # ⌈9/4⌉ = 3
    holes = gt.clone()
    holes[3] = -1.0  # a frame without valid GT is left out of both views, as the protocol leaves it out
    assert frame_aligned_abs_rel(gt * 2.0, holes, MAX_DEPTH, alignment="scale").numel() == 7
