"""GPU memory of one 1x32x3x518x518 window, vits and vitl, fp32 and fp16 (the published README's measurement:
A100, 7.3 / 6.8 GB for Small, 26.7 / 23.6 GB for Large). Ours must not need more than the published figure."""
from __future__ import annotations

import pytest
import torch

from tests.helpers import checks

PUBLISHED_GB = {("vits", "fp32"): 7.3, ("vits", "fp16"): 6.8, ("vitl", "fp32"): 26.7, ("vitl", "fp16"): 23.6}


@pytest.mark.parametrize("encoder", ["vits", "vitl"])
def test_window_memory_within_the_published_figure(encoder, cuda):
    model = checks.perturbed_model(encoder)
    for precision in ("fp32", "fp16"):
        m = checks.window_memory(model, cuda, precision)
        print(f"{encoder} {precision}: {m}")
        assert m["peak_reserved_mib"] / 1024 <= PUBLISHED_GB[(encoder, precision)], m
    del model
    torch.cuda.empty_cache()
