"""Shared fixtures: the golden reference folder and model, a tiny model with its checkpoint files, tiny
synthetic-scene shards (video clips, image samples).

Session-scoped and shared: treat them as read-only (copy a model with `copy.deepcopy` before changing it).
"""
from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY_ENCODER = "vitt"  # ViT-Ti/14-sized: the real code paths at CPU-test cost
# The kind probe's verdict cache (checkpoints/probe_cache.py) of this test session, not the user's (subprocesses
# inherit it).
os.environ["VDA_CACHE_DIR"] = tempfile.mkdtemp(prefix="vda-test-cache-")
# Ctrl-C as a user's terminal delivers it: a suite started in the background of a non-interactive shell inherits
# SIGINT ignored (and its subprocesses with it), where `_thread.interrupt_main()` does nothing and a SIGINT sent to a
# `vda` process is lost; the Ctrl-C tests then fail for the launcher's sake. A Python handler here is reset to the
# default at exec, so every subprocess a test starts gets KeyboardInterrupt as well.
if signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, signal.SIG_DFL):
    signal.signal(signal.SIGINT, signal.default_int_handler)


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
    from vda_lightning.models import video_to_image

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
    from vda_lightning.models import build_image_model, video_to_image

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
def image_shards(tmp_path_factory) -> list[str]:
    """One synthetic-scene shard of 3 image samples (one 28x42 frame each, with depth): unlabelled-image input."""
    from vda_lightning.data import generate_synthetic_shards

    out = generate_synthetic_shards(str(tmp_path_factory.mktemp("image_shards")), n_train_clips=0, n_val_clips=0,
                                    height=28, width=42, seed=0, n_image_samples=3, images_per_shard=3,
                                    progress=False)
    return out["image"]


SYNTHETIC = {"train_clips": 12, "val_clips": 3, "clip_len": 4, "height": 28, "width": 42, "clips_per_shard": 2}


@pytest.fixture(scope="session")
def synthetic_shards(tmp_path_factory) -> Path:
    """Procedural scenes written once per session by `vda-shard synthetic`: 6 train shards of 2 clips (4 frames,
    28x42, with depth, K and poses) and 2 val shards (3 clips). Read them through VideoDepthDataModule."""
    from vda_lightning.data.cli import main as vda_shard

    out = tmp_path_factory.mktemp("synthetic_shards")
    s = SYNTHETIC
    assert vda_shard(["synthetic", "--out", str(out), "--train-clips", str(s["train_clips"]), "--val-clips",
                      str(s["val_clips"]), "--clip-len", str(s["clip_len"]), "--height", str(s["height"]),
                      "--width", str(s["width"]), "--clips-per-shard", str(s["clips_per_shard"])]) == 0
    return out


@pytest.fixture(scope="session")
def ddp_reference(synthetic_shards, tmp_path_factory) -> dict:
    """The uninterrupted 2-rank gloo run of the shared resume recipe (`recipes.DDP_STEPS` steps): its final head
    weights and per-rank, per-step sample keys, for the SIGKILL and SLURM-requeue tests to compare against."""
    from tests.fakes.recorder import read_step_keys
    from tests.helpers.recipes import (
        DDP_EVERY,
        DDP_STEPS,
        head_weights,
        logged_losses,
        run_fit,
        tiny_recipe,
        write_config,
    )

    tmp = tmp_path_factory.mktemp("ddp_reference")
    config = write_config(tmp / "ref.yaml", tiny_recipe(synthetic_shards, tmp / "run", DDP_STEPS, DDP_EVERY,
                                                         devices=2))
    res = run_fit("--config", str(config), step_keys=tmp / "ref.keys")
    assert res.returncode == 0, res.stderr[-3000:]
    head, state = head_weights(tmp / "run" / "checkpoints" / "last.ckpt")
    assert state["global_step"] == DDP_STEPS
    return {"head": head, "keys": [read_step_keys(str(tmp / "ref.keys"), rank) for rank in range(2)],
            "losses": logged_losses(tmp / "run")}


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


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (`-n 2 --dist loadgroup`, pyproject's addopts) the tests of the one local SLURM cluster
    share a worker: they start and stop its daemons, which two workers at once would fight over."""
    for item in items:
        if item.get_closest_marker("slurm") or item.path.name.startswith("test_slurm"):
            item.add_marker(pytest.mark.xdist_group("slurm"))
