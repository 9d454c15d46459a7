"""Checkpoint I/O: the documented entry point, safe unpickling, helpful errors, round trips."""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import vda_lightning
from vda_lightning import CheckpointError, load_model, save_model
from vda_lightning.models import build_image_model


def test_golden_safetensors_reproduces_forward_cases(golden_dir):
    model = vda_lightning.load_model(golden_dir / "vda_vits_random.safetensors")
    assert model.config.encoder == "vits" and not model.config.metric and not model.training
    cases = load_file(str(golden_dir / "forward_cases.safetensors"))
    for c in "abc":
        with torch.no_grad():
            out = model(cases[f"{c}.input"])
        ref = cases[f"{c}.output"]
        assert ((out - ref).abs().max() / ref.abs().max()).item() < 1e-4


def test_published_pth_half_precision_and_metric_name(tmp_path, golden_state_dict):
    path = tmp_path / "metric_video_depth_anything_vits.pth"
    torch.save({k: v.half() for k, v in golden_state_dict.items()}, path)
    model = load_model(path)
    assert model.config.metric  # published metric files are recognised by name
    assert model.pretrained.pos_embed.dtype == torch.float32
    assert torch.allclose(model.state_dict()["head.scratch.output_conv1.weight"],
                          golden_state_dict["head.scratch.output_conv1.weight"], atol=1e-3)


def test_code_payload_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    torch.save({"pretrained.cls_token": torch.zeros(1), "x": Payload()}, path)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_model(path)
    assert not marker.exists()


def test_image_checkpoint_where_video_expected_gets_helpful_error(tmp_path):
    image = build_image_model("vits")
    path = tmp_path / "depth_anything_v2_vits.pth"
    torch.save(image.state_dict(), path)
    with pytest.raises(CheckpointError) as err:
        load_model(path, expect="video")
    msg = str(err.value)
    assert str(path) in msg and "missing" in msg and "head.motion_modules.{i}" in msg
    assert "Depth Anything V2 image checkpoint" in msg and "suggest encoder 'vits'" in msg
    assert len(msg.splitlines()) < 40  # grouped, not hundreds of lines


def test_wrong_size_error_lists_shape_mismatches(tmp_path, golden_state_dict):
    path = tmp_path / "vda.pth"
    torch.save(golden_state_dict, path)
    with pytest.raises(CheckpointError) as err:
        load_model(path, encoder="vitb")
    msg = str(err.value)
    assert "shape mismatches" in msg and "suggest encoder 'vits'" in msg


def test_partial_checkpoint_lists_missing_keys(tmp_path, golden_state_dict):
    sd = {k: v for k, v in golden_state_dict.items() if "motion_modules.3" not in k}
    sd["head.extra.weight"] = torch.zeros(3)
    path = tmp_path / "partial.safetensors"
    save_file(sd, str(path))
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    msg = str(err.value)
    assert "missing 28 keys" in msg and "unexpected 1 keys" in msg and "head.extra.weight" in msg


def test_dav2_checkpoint_becomes_video_model_equal_per_frame(tmp_path, tiny_image_model):
    image = tiny_image_model
    path = tmp_path / "depth_anything_v2_vitt.pth"
    torch.save(image.state_dict(), path)
    video = load_model(path)
    x = torch.randn(1, 3, 3, 42, 56)
    with torch.no_grad():
        assert torch.allclose(video(x)[0], image(x[0]), atol=1e-6)
    teacher = vda_lightning.load_image_model(path)
    assert type(teacher).__name__ == "DepthAnythingV2"


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_save_round_trip_in_published_layout(tmp_path, suffix, tiny_model):
    model = copy.deepcopy(tiny_model)
    model.config = dataclasses.replace(model.config, metric=True)
    path = save_model(model, tmp_path / f"model{suffix}")
    if suffix == ".pth":
        raw = torch.load(path, weights_only=True)
        assert set(raw) == set(model.state_dict())  # plain published layout, nothing else
        assert json.loads(Path(str(path) + ".json").read_text())["metric"] is True
    loaded = load_model(path)
    assert loaded.config == model.config
    x = torch.randn(1, 2, 3, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_missing_file_and_garbage_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_model(tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match=str(bad)):
        load_model(bad)


def test_dataparallel_prefix_and_lightning_checkpoint_with_referenced_encoder(tmp_path, tiny_model, tiny_checkpoints):
    from vda_lightning.checkpoints import file_sha256

    model = tiny_model
    sd = model.state_dict()
    wrapped = tmp_path / "ddp.pth"
    torch.save({"module." + k: v for k, v in sd.items()}, wrapped)
    assert all(torch.equal(v, sd[k]) for k, v in load_model(wrapped).state_dict().items())

    encoder_file = save_model(model, tmp_path / "init.safetensors")
    head_only = {"model." + k: v for k, v in sd.items() if k.startswith("head.")}
    ckpt = {"state_dict": head_only, "epoch": 1,
            "vda": {"config": model.config.to_dict(), "prefix": "model.",
                    "encoder_source": {"path": str(encoder_file), "sha256": file_sha256(encoder_file)}}}
    torch.save(ckpt, tmp_path / "last.ckpt")
    loaded = load_model(tmp_path / "last.ckpt")
    assert loaded.config == model.config
    assert all(torch.equal(v, sd[k]) for k, v in loaded.state_dict().items())  # encoder restored from its file
    shutil.copyfile(tiny_checkpoints["metric"], encoder_file)  # the referenced file changes
    with pytest.raises(CheckpointError, match="changed \\(sha256 mismatch\\)"):
        load_model(tmp_path / "last.ckpt")
    encoder_file.unlink()
    with pytest.raises(CheckpointError, match="init.safetensors, which is missing"):
        load_model(tmp_path / "last.ckpt")


def test_video_checkpoint_as_teacher_and_named_adapters(tmp_path, tiny_model):
    from vda_lightning.models import dav2_to_video, is_image_state_dict, video_to_image

    video = tiny_model
    path = save_model(video, tmp_path / "vda.pth")
    teacher = vda_lightning.load_image_model(path)
    image_sd = video_to_image(video.state_dict())
    assert type(teacher).__name__ == "DepthAnythingV2" and is_image_state_dict(image_sd)
    assert teacher.state_dict().keys() == image_sd.keys()
    assert all(torch.equal(v, image_sd[k]) for k, v in teacher.state_dict().items())
    back = dav2_to_video(image_sd, video.state_dict())  # spatial weights renamed back, temporal ones filled in
    assert back.keys() == video.state_dict().keys()
    assert all(torch.equal(v, video.state_dict()[k]) for k, v in back.items())
    with pytest.raises(ValueError, match="expect must be"):
        load_model(path, expect="teacher")
