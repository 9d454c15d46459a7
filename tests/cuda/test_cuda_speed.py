"""The speed levers on the GPU (models/speed.py): CUDA graphs, channels_last and torch.compile give the plain model's
window within float reordering (fp32, TF32 off), and unapply restores it; a captured graph is replayed for the
same shapes and re-captured for new ones."""
from __future__ import annotations

import pytest
import torch

from vda_lightning.models import speed

from tests.helpers import checks


@pytest.fixture(scope="module")
def window(cuda):
    return torch.randn(1, 8, 3, 56, 84, generator=torch.Generator().manual_seed(0)).to(cuda)


@pytest.mark.parametrize("levers", [["cuda_graphs"], ["channels_last"], ["compile"], ["compile", "cuda_graphs"]])
def test_lever_matches_the_plain_model(cuda_model, window, levers):
    with checks.strict_fp32(), torch.inference_mode():
        ref = cuda_model(window).float().cpu()
        speed.apply_levers(cuda_model, levers)
        try:
            out = [cuda_model(window).float().cpu() for _ in range(3)]  # capture / compile, then replays
        finally:
            speed.unapply(cuda_model)
        assert torch.equal(cuda_model(window).float().cpu(), ref)
    for o in out:
        assert checks.max_rel_error(o, ref) <= 1e-5, levers


def test_cuda_graphs_capture_once_per_shape(cuda):
    calls = []

    def fn(x):
        calls.append(tuple(x.shape))
        return x * 2 + 1

    g = speed.CUDAGraphed(fn, warmup=1)
    with torch.inference_mode():
        a, b = torch.randn(4, device=cuda), torch.randn(6, device=cuda)
        for x in (a, a, b, a, b):
            torch.testing.assert_close(g(x), x * 2 + 1)
    assert len(g.graphs) == 2 and calls.count((4,)) == 2 and calls.count((6,)) == 2  # warmup + capture, per shape
