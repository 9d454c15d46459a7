"""Shared fixtures: the golden reference folder, tiny models, tiny synthetic-scene shards."""
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
def golden_image_state_dict(golden_state_dict):
    """The same random weights in Depth Anything V2's image layout (the golden `dav2_image_cases` model)."""
    from vda_lightning.checkpoints import video_to_image

    return video_to_image(golden_state_dict)


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
    from recipes import DDP_EVERY, DDP_STEPS, head_weights, logged_losses, run_fit, tiny_recipe, write_config

    from tests.fakes.recorder import read_step_keys

    tmp = tmp_path_factory.mktemp("ddp_reference")
    config = write_config(tmp / "ref.yaml", tiny_recipe(synthetic_shards, tmp / "run", DDP_STEPS, DDP_EVERY,
                                                         devices=2))
    res = run_fit("--config", str(config), step_keys=tmp / "ref.keys")
    assert res.returncode == 0, res.stderr[-3000:]
    head, state = head_weights(tmp / "run" / "checkpoints" / "last.ckpt")
    assert state["global_step"] == DDP_STEPS
    return {"head": head, "keys": [read_step_keys(str(tmp / "ref.keys"), rank) for rank in range(2)],
            "losses": logged_losses(tmp / "run")}
