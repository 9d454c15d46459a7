"""The CUDA suite: `python -m pytest -m cuda` (or `pytest tests/cuda`). Every test here carries the `cuda` marker
and skips, saying why, where no CUDA device is visible; `vda bench gpu` (scripts/gpu_check.sh) runs it on a GPU."""
from __future__ import annotations

import os

import pytest
import torch

HERE = __file__.rsplit("/", 1)[0]
NO_CUDA = "needs a CUDA device (torch.cuda.is_available() is False on this machine)"


# VDA_CUDA_DRY_RUN=1: run the suite's logic on the CPU (device "cpu", no skips) to catch mistakes in the tests
# before spending device time; tests of CUDA-only machinery (allocator statistics, pinned memory, graph capture)
# then fail or skip by their own checks. Not part of the normal suite.
DRY_RUN = os.environ.get("VDA_CUDA_DRY_RUN") == "1"


@pytest.hookimpl(tryfirst=True)  # before -m selects: the marker must already be there
def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason=NO_CUDA)
    for item in items:
        if str(item.fspath).startswith(HERE):
            item.add_marker(pytest.mark.cuda)
            if not torch.cuda.is_available() and not DRY_RUN:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def cuda():
    return torch.device("cpu" if DRY_RUN and not torch.cuda.is_available() else "cuda")


@pytest.fixture(scope="session")
def golden_cases(golden_dir):
    from safetensors.torch import load_file

    return load_file(str(golden_dir / "forward_cases.safetensors"))


@pytest.fixture(scope="session")
def long_case(golden_dir):
    import numpy as np

    return dict(np.load(golden_dir / "long_video_case.npz"))


@pytest.fixture(scope="session")
def streaming_case(golden_dir):
    import numpy as np

    return dict(np.load(golden_dir / "streaming_case.npz"))


@pytest.fixture(scope="session")
def cuda_model(golden_state_dict, cuda):
    """The golden random-weight vits model on the GPU (its own copy: the CPU fixture stays on the CPU)."""
    from vda_lightning.models import build_video_model

    model = build_video_model("vits").eval()
    model.load_state_dict(golden_state_dict, strict=True)
    return model.to(cuda)
