"""A training step on the GPU under Lightning's bf16-mixed and 16-mixed, with gradient checkpointing on and off:
the loss and the network's backward match fp32 within the stated bars (tests/helpers/checks.py TRAIN_TOLERANCES), and
checkpointing changes nothing but memory."""
from __future__ import annotations

import pytest
import torch

from tests.helpers import checks


@pytest.fixture(scope="module")
def module(golden_state_dict, cuda):
    from vda_lightning.training.module import VideoDepthModule

    m = VideoDepthModule(encoder="vits")
    m.model.load_state_dict(golden_state_dict, strict=True)
    return m.to(cuda)


def test_mixed_precision_steps_match_fp32(module, cuda):
    batch = checks.synthetic_train_batch(clips=2, frames=8, images=4, size=112, device=cuda)
    rows = checks.train_precisions(module, batch, ["bf16-mixed", "16-mixed"])
    for precision, row in rows.items():
        assert row["fails"] == [], (precision, row["fails"])


def test_gradient_checkpointing_lowers_peak_memory(module, cuda):
    batch = checks.synthetic_train_batch(clips=1, frames=16, images=0, size=280, device=cuda)
    peaks = {}
    for on in (False, True):
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        checks.train_step(module, batch, "bf16-mixed", checkpointing=on)
        torch.cuda.synchronize()
        peaks[on] = torch.cuda.max_memory_allocated()
    assert peaks[True] < 0.8 * peaks[False], {k: v / 2**20 for k, v in peaks.items()}
