"""The precision checks of `tests/helpers/checks.py` on the CPU: the same comparison logic the CUDA suite
(tests/cuda) and `vda bench gpu` rely on, proven here on hand cases, on the golden outputs (bf16 autocast on the CPU
vs fp32) and on a training step under Lightning's bf16-mixed with gradient checkpointing on and off."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers import checks


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Equality checks, not timings: one intra-op thread avoids OpenMP thrashing on a shared 2-core box."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_measures_by_hand():
    ref = np.zeros((3, 2, 2), np.float32)
    ref[1] = 1.0
    ref[2] = [[2.0, 0.0], [0.0, 2.0]]
    # |d1 - d0| = 1 everywhere; |d2 - d1| = 1 everywhere -> flicker 1
    assert checks.flicker(ref) == pytest.approx(1.0)
    assert checks.flicker(ref[None]) == pytest.approx(1.0)  # (B, T, H, W)
    assert checks.black_frames(ref) == 2  # frames 0 and 1 are flat; frame 2 spans the range
    out = ref.copy()
    out[2, 0, 0] = 2.5
    assert checks.max_rel_error(out, ref) == pytest.approx(0.25)  # 0.5 / max |ref| = 2
    assert checks.mean_rel_error(out, ref) == pytest.approx((0.5 / 12) / (8 / 12))
    with pytest.raises(ValueError, match="two frames"):
        checks.flicker(ref[:1])


def test_flicker_and_failures_on_the_golden_long_video(golden_dir):
    """The published long-video output (fp32) against itself passes every bar; a shimmer (noise new in every
    frame) raises flicker past the bf16 bar; a black frame and a NaN are caught."""
    ref = np.load(golden_dir / "long_video_case.npz")["depths"]
    restated = np.mean([np.abs(ref[t + 1].astype(np.float64) - ref[t]).mean() for t in range(len(ref) - 1)])
    assert checks.flicker(ref) == pytest.approx(restated, rel=1e-12)
    same = checks.compare(ref, ref)
    assert same["flicker_ratio"] == 1.0 and same["black_frames"] == 0 and not checks.failures(same, "fp32")

    rng = np.random.default_rng(0)
    shimmer = 2 * checks.flicker(ref) * rng.standard_normal(ref.shape)  # per-pixel noise, new in every frame
    noisy = np.maximum(ref + shimmer, 0).astype(np.float32)
    report = checks.compare(noisy, ref)
    assert report["flicker_ratio"] > checks.TOLERANCES["bf16"]["flicker_factor"]
    assert any("flicker" in f for f in checks.failures(report, "bf16"))

    broken = ref.copy()
    broken[10] = 0.0
    broken[20, 5, 5] = np.nan
    fails = checks.failures(checks.compare(broken, ref), "fp16")
    assert any("black frames" in f for f in fails) and any("non-finite" in f for f in fails)


def test_bf16_autocast_on_the_cpu_meets_the_bf16_bar_with_fp32_output_convolutions(golden_video_model, golden_dir):
    from safetensors.torch import load_file

    cases = load_file(str(golden_dir / "forward_cases.safetensors"))
    fp32 = checks.forward_cases(golden_video_model, cases, "cpu", "fp32", names=["b"])["b"]
    assert fp32["fails"] == [] and fp32["vs_golden"]["max_rel"] <= 1e-4
    bf16 = checks.forward_cases(golden_video_model, cases, "cpu", "bf16", names=["b"])["b"]
    assert bf16["fails"] == [], bf16["fails"]
    assert bf16["output_conv_dtypes"] == ["torch.float32"]  # published: fp32 under autocast (ours on the CPU too)
    # really reduced precision (not silently fp32), and within the bar
    assert 1e-3 < bf16["vs_fp32"]["max_rel"] <= checks.TOLERANCES["bf16"]["max_rel"]


def test_a_training_step_under_bf16_mixed_with_and_without_checkpointing():
    from vda_lightning.training.module import VideoDepthModule

    torch.manual_seed(0)
    module = VideoDepthModule(encoder="vitt")
    with torch.no_grad():
        for m in module.model.head.motion_modules:  # active temporal layers: their gradients count
            torch.nn.init.normal_(m.temporal_transformer.proj_out.weight, std=0.02)
    batch = checks.synthetic_train_batch(clips=1, frames=3, images=1, size=42, device="cpu")
    rows = checks.train_precisions(module, batch, ["bf16-mixed"])
    for precision, row in rows.items():
        assert row["fails"] == [], (precision, row["fails"])
        assert row["backward_vs_fp32"]["params_with_grad"] > 100
    assert rows["32-true"]["loss_rel"] == 0.0 and rows["32-true"]["backward_vs_fp32"]["grad_rel"] == 0.0
    bf16 = rows["bf16-mixed"]
    assert 0 < bf16["loss_rel"] and 0 < bf16["backward_vs_fp32"]["grad_rel"]  # really ran in bf16
    assert bf16["checkpointing_on_vs_off"]["grad_rel"] <= checks.CHECKPOINTING_TOLERANCE["grad_rel"]
