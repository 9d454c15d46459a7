"""Shared fixtures: the golden reference folder and tiny models."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def golden_path() -> Path:
    return Path(os.environ.get("VDA_GOLDEN_DIR", ROOT.parent / "shared" / "golden"))


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """The published code's reference outputs; tests that need them skip (saying why) only if absent."""
    path = golden_path()
    if not path.is_dir():
        pytest.skip(f"golden reference folder {path} is absent (set VDA_GOLDEN_DIR or place ../shared/golden)")
    return path


@pytest.fixture(scope="session")
def golden_state_dict(golden_dir):
    """The random-weight vits state dict in the published layout, cast to float32."""
    from safetensors.torch import load_file

    return {k: v.float() for k, v in load_file(str(golden_dir / "vda_vits_random.safetensors")).items()}


@pytest.fixture(scope="session")
def golden_video_model(golden_state_dict):
    from vda_lightning.models import build_video_model

    model = build_video_model("vits").eval()
    model.load_state_dict(golden_state_dict, strict=True)
    return model


@pytest.fixture(scope="session")
def golden_onnx_dir(golden_dir, tmp_path_factory):
    """The golden vits checkpoint exported once per session through `vda export --format onnx` (whole model,
    encoder + head, streaming step; fp32, traced at 2 clips x 2 frames x 42x56, a shape no golden case has)."""
    from vda_lightning.export import main

    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    code = main([str(golden_dir / "vda_vits_random.safetensors"), "--format", "onnx", "--output", str(out), "--parts",
                 "--streaming"])
    assert code == 0
    return out.parent
