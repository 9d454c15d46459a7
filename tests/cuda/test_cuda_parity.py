"""On the GPU: fp32 equals the published CPU outputs; fp16 and bf16 autocast stay within the stated bars of fp32
(tests/helpers/checks.py TOLERANCES) with the output convolutions in fp32, on the golden forward cases, the golden long
video (no NaN, no black frame, flicker within the stated factor) and the streaming case; the threaded runner with
pinned staging and non-blocking copies gives the serial runner's maps."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers import checks

AUTOCAST = ["fp16", "bf16"]


def test_fp32_forward_equals_the_published_cpu_outputs(cuda_model, golden_cases, cuda):
    rows = checks.forward_cases(cuda_model, golden_cases, cuda, "fp32")
    for name, row in rows.items():
        assert row["fails"] == [], (name, row["fails"])
        assert row["vs_golden"]["max_rel"] <= checks.TOLERANCES["fp32"]["max_rel"]


@pytest.mark.parametrize("precision", AUTOCAST)
def test_autocast_forward_within_the_bar_with_fp32_output_convolutions(cuda_model, golden_cases, cuda, precision):
    rows = checks.forward_cases(cuda_model, golden_cases, cuda, precision)
    for name, row in rows.items():
        assert row["output_conv_dtypes"] == ["torch.float32"], name
        assert row["fails"] == [], (name, row["fails"])
        assert row["vs_fp32"]["max_rel"] > 1e-5, "autocast did not reduce precision at all"


@pytest.fixture(scope="module")
def cuda_fp32_video(cuda_model, long_case, cuda):
    return checks.run_video(cuda_model, long_case["frames"], int(long_case["input_size"]), cuda, "fp32")


def test_long_video_fp32_equals_the_published_cpu_output(cuda_fp32_video, long_case):
    report = checks.compare(cuda_fp32_video, long_case["depths"])
    assert checks.failures(report, "fp32") == []


@pytest.mark.parametrize("precision", AUTOCAST)
def test_long_video_autocast_no_nan_no_black_frame_flicker_within_the_bar(cuda_model, long_case, cuda_fp32_video,
                                                                          cuda, precision):
    row = checks.video_case(cuda_model, long_case["frames"], long_case["depths"], int(long_case["input_size"]),
                            cuda, precision, fp32_out=cuda_fp32_video)
    assert row["fails"] == [], row["fails"]
    assert row["vs_fp32"]["nonfinite"] == 0 and row["vs_fp32"]["black_frames"] == 0


@pytest.mark.parametrize("precision", ["fp32", *AUTOCAST])
def test_streaming_mode(cuda_model, long_case, streaming_case, cuda, precision):
    frames = long_case["frames"][: int(streaming_case["n_frames"])]
    size = int(streaming_case["input_size"])
    out = checks.run_video(cuda_model, frames, size, cuda, precision, mode="streaming")
    if precision == "fp32":
        assert checks.failures(checks.compare(out, streaming_case["depths"]), "fp32") == []
    else:
        ref = checks.run_video(cuda_model, frames, size, cuda, "fp32", mode="streaming")
        assert checks.failures(checks.compare(out, ref), precision) == []


def test_threaded_runner_with_pinned_staging_equals_the_serial_runner(cuda_model, long_case, cuda):
    frames, size = long_case["frames"], int(long_case["input_size"])
    serial = checks.run_video(cuda_model, frames, size, cuda, "fp16")
    threaded = checks.run_video(cuda_model, frames, size, cuda, "fp16", threaded=True)
    assert threaded.shape == serial.shape and checks.max_rel_error(threaded, serial) <= 1e-6


def test_staging_is_pinned_and_downloads_do_not_block(cuda):
    from vda_lightning.inference.preprocess import Preprocessor
    from vda_lightning.inference.runtime import Download, stage_frames

    prep = Preprocessor(20, 30, input_size=28, device=cuda)
    frames = [np.full((20, 30, 3), i, np.uint8) for i in range(3)]
    staged, prepared = stage_frames(prep, frames)
    assert staged.is_pinned() and not prepared and staged.dtype == torch.uint8
    x = prep(staged)
    assert x.device.type == "cuda" and x.shape == (3, 3, 28, 42)
    y = torch.randn(4, 56, 70, device=cuda)
    down = Download(y)
    assert down._host.is_pinned()
    np.testing.assert_array_equal(down.numpy(), y.cpu().numpy())
