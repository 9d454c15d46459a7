"""Shared fixtures: the golden reference folder and model, and a tiny model, its checkpoint files and shards.

Session-scoped and shared: treat them as read-only (copy a model with `copy.deepcopy` before changing it).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY_ENCODER = "vitt"  # ViT-Ti/14-sized: the real code paths at CPU-test cost


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
def golden_image_state_dict(golden_state_dict):
    """The same random weights in Depth Anything V2's image layout (the golden `dav2_image_cases` model)."""
    from vda_lightning.checkpoints import video_to_image

    return video_to_image(golden_state_dict)


@pytest.fixture(scope="session")
def tiny_model():
    """A random `vitt` video model (torch seed 0, drawn without touching the tests' global RNG), in eval mode."""
    import torch

    from vda_lightning.models import build_video_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build_video_model(TINY_ENCODER).eval()


@pytest.fixture(scope="session")
def tiny_image_model(tiny_model):
    """The tiny model's weights as a Depth Anything V2 image model (a teacher)."""
    from vda_lightning.checkpoints import video_to_image
    from vda_lightning.models import build_image_model

    model = build_image_model(TINY_ENCODER).eval()
    model.load_state_dict(video_to_image(tiny_model.state_dict()), strict=True)
    return model


@pytest.fixture(scope="session")
def tiny_checkpoints(tiny_model, tiny_image_model, tmp_path_factory) -> dict[str, Path]:
    """`save_model` files of the tiny weights: "video" (relative), "metric" (same weights, metric config) and
    "image" (the Depth Anything V2 image model)."""
    import copy
    import dataclasses

    from vda_lightning import save_model

    root = tmp_path_factory.mktemp("tiny_checkpoints")
    metric = copy.deepcopy(tiny_model)
    metric.config = dataclasses.replace(tiny_model.config, metric=True)
    return {"video": save_model(tiny_model, root / "tiny.safetensors"),
            "metric": save_model(metric, root / "metric_tiny.safetensors"),
            "image": save_model(tiny_image_model, root / "depth_anything_v2_tiny.safetensors")}


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_checkpoints) -> Path:
    """The tiny video model as a safetensors file (with its config in the metadata)."""
    return tiny_checkpoints["video"]


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory) -> dict[str, list[str]]:
    """Synthetic-scene shards (`vda shard synthetic`) at 28x42: "train" 4 two-frame clips in 2 shards, "val" 2 clips,
    "image" 3 one-frame image samples in 1 shard."""
    from vda_lightning.data import generate_synthetic_shards

    return generate_synthetic_shards(str(tmp_path_factory.mktemp("tiny_shards")), n_train_clips=4, n_val_clips=2,
                                     clip_len=2, height=28, width=42, seed=0, clips_per_shard=2, n_image_samples=3,
                                     images_per_shard=3, progress=False)
