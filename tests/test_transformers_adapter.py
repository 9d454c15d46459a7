"""transformers' Depth Anything V2 (`DepthAnythingForDepthEstimation`, the `*-hf` checkpoints) in and out.

A random-weight transformers model at our `vitt` size (hidden 192, 4 blocks, 3 heads, taps 0-3, neck 32-192) runs
beside ours with the converted weights on the same non-square input, both directions, relative and metric:
max |ours - theirs| / max |theirs| <= 1e-5 with transformers' position-embedding rule (`match_transformers`). The
adapter's key check is driven by Hypothesis (derandomized, bounded).
"""
from __future__ import annotations

import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

transformers = pytest.importorskip("transformers", reason="the transformers extra (pip install -e '.[dev]')")

from vda_lightning.checkpoints import CheckpointError, load_model, save_model  # noqa: E402
from vda_lightning.checkpoints.transformers import write_transformers  # noqa: E402
from vda_lightning.models import DepthAnythingV2, VideoDepthAnything, get_config, match_transformers  # noqa: E402
from vda_lightning.models.depth_anything_hf import (  # noqa: E402
    check_transformers_keys,
    transformers_keys,
    transformers_to_dav2,
)

TOLERANCE = 1e-5  # max |ours - theirs| / max |theirs|
BACKBONE = {"model_type": "dinov2", "hidden_size": 192, "num_hidden_layers": 4, "num_attention_heads": 3,
            "image_size": 518, "patch_size": 14, "out_indices": [1, 2, 3, 4], "reshape_hidden_states": False}
KINDS = {"relative": 1, "metric": 20}  # max_depth (transformers 5 types it as an int)


def relative_difference(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return float((ours - theirs).abs().max() / theirs.abs().max())


def perturb(model: torch.nn.Module, seed: int, last_bias: str) -> torch.nn.Module:
    """Weights away from their initialisation (identity LayerScale, zero biases), and a positive last bias so that
    the ReLU head is not zero almost everywhere: a parity test on a dead output would prove nothing."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
        model.get_parameter(last_bias).fill_(0.3)
    return model.eval()


@pytest.fixture(scope="module")
def frames():
    return torch.randn(2, 3, 42, 70, generator=torch.Generator().manual_seed(0))  # 3 x 5 tokens: resampled PE


@pytest.fixture(scope="module")
def hf_folders(tmp_path_factory, frames):
    """{kind: (transformers model, its save_pretrained folder, its depth on `frames`)}, relative and metric."""
    out = {}
    for seed, (kind, max_depth) in enumerate(KINDS.items()):
        torch.manual_seed(seed)  # transformers' initialisation draws from the global generator
        config = transformers.DepthAnythingConfig(
            backbone_config=BACKBONE, reassemble_hidden_size=192, neck_hidden_sizes=[32, 64, 96, 192],
            fusion_hidden_size=32, head_hidden_size=32, depth_estimation_type=kind, max_depth=max_depth)
        model = perturb(transformers.DepthAnythingForDepthEstimation(config), seed, "head.conv3.bias")
        folder = tmp_path_factory.mktemp(f"hf_{kind}")
        model.save_pretrained(folder)
        with torch.no_grad():
            out[kind] = (model, folder, model(pixel_values=frames).predicted_depth)
    return out


@pytest.mark.parametrize("kind", list(KINDS))
def test_transformers_checkpoint_loads_as_our_image_model(hf_folders, frames, kind):
    theirs, folder, reference = hf_folders[kind]
    ours = load_model(folder / "model.safetensors", expect="image")
    assert isinstance(ours, DepthAnythingV2) and ours.config.encoder == "vitt"
    assert ours.config.metric == (kind == "metric") and ours.kind_source == "metadata"  # from config.json
    assert ours.max_depth == (20.0 if kind == "metric" else None)
    with torch.no_grad():
        published_rule = ours(frames)
        matched = match_transformers(ours)(frames)
    assert float((reference > 0).float().mean()) > 0.5 and float(reference.std()) > 0  # a live output
    difference = relative_difference(matched, reference)
    print(f"transformers -> ours, {kind}: max relative difference {difference:.2e} (transformers' position-embedding "
          f"rule), {relative_difference(published_rule, reference):.2e} (the published DINOv2 rule)")
    assert difference <= TOLERANCE
    # transformers 5's in-memory names (attention.q_proj ...) convert to the same tensors as its files' names
    in_memory = transformers_to_dav2(theirs.state_dict(), max_depth=KINDS[kind], metric=kind == "metric")
    assert all(torch.equal(in_memory[k], v) for k, v in ours.state_dict().items())


@pytest.mark.parametrize("kind", list(KINDS))
def test_transformers_checkpoint_as_video_initialisation(hf_folders, frames, kind):
    """init_checkpoint / load_model's default: a video model, transformers' network per frame for a relative file
    (fresh temporal modules with zero output projections); a metric file's sigmoid head folded for ReLU
    (`sigmoid_head_to_relu`, as for a published DAv2 metric file), so only its kind is checked here."""
    _, folder, reference = hf_folders[kind]
    video = load_model(folder / "model.safetensors")
    assert isinstance(video, VideoDepthAnything) and video.config.metric == (kind == "metric")
    assert video.kind_source == "metadata"
    if kind == "relative":
        with torch.no_grad():
            per_frame = match_transformers(video)(frames.unsqueeze(1))[:, 0]  # (B, T=1, ...) -> (B, H, W)
        difference = relative_difference(per_frame, reference)
        print(f"transformers -> our video model (init), relative: max relative difference {difference:.2e}")
        assert difference <= TOLERANCE


def test_transformers_checkpoint_as_teacher(hf_folders, frames):
    from vda_lightning.training.teacher import Teacher

    _, folder, reference = hf_folders["relative"]
    teacher = Teacher("vitt", str(folder / "model.safetensors"))  # model.teacher_checkpoint
    assert isinstance(teacher.model, DepthAnythingV2) and teacher.model.config.encoder == "vitt"
    with torch.no_grad():
        assert relative_difference(match_transformers(teacher.model)(frames), reference) <= TOLERANCE


def test_our_image_model_exports_to_transformers(tmp_path, frames):
    """`vda export CKPT --format transformers OUT` (in process), read by transformers' from_pretrained: no key
    missing or left over, the same depth; read back by load_model: the same tensors."""
    from vda_lightning.export import main

    torch.manual_seed(3)
    ours = perturb(DepthAnythingV2(get_config("vitt")), 3, "depth_head.scratch.output_conv2.2.bias")
    source = save_model(ours, tmp_path / "dav2_vitt.safetensors")
    assert main([str(source), "--format", "transformers", "--output", str(tmp_path / "hf")]) == 0
    theirs, info = transformers.DepthAnythingForDepthEstimation.from_pretrained(tmp_path / "hf",
                                                                                output_loading_info=True)
    assert not any(info.get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    with torch.no_grad():
        difference = relative_difference(match_transformers(ours)(frames), theirs.eval()(pixel_values=frames)
                                         .predicted_depth)
    print(f"ours -> transformers, relative: max relative difference {difference:.2e}")
    assert difference <= TOLERANCE
    back = transformers_to_dav2(load_file(tmp_path / "hf" / "model.safetensors"))  # what load_model converts
    assert back.keys() == ours.state_dict().keys()
    assert all(torch.equal(back[k], v) for k, v in ours.state_dict().items())
    video = tmp_path / "vda.safetensors"  # a video checkpoint's keys (head.*, temporal layers) are refused
    save_file({"pretrained.cls_token": torch.zeros(1, 1, 192), "head.motion_modules.0.weight": torch.zeros(1)}, video)
    with pytest.raises(CheckpointError, match="Video Depth Anything checkpoint.*no temporal layers"):
        write_transformers(ours, tmp_path / "hf_video", source=video)


def test_our_metric_image_model_exports_to_transformers(tmp_path, frames):
    torch.manual_seed(4)
    ours = perturb(DepthAnythingV2(get_config("vitt", metric=True), max_depth=20.0), 4,
                   "depth_head.scratch.output_conv2.2.bias")
    write_transformers(ours, tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["depth_estimation_type"] == "metric" and config["max_depth"] == 20
    theirs = transformers.DepthAnythingForDepthEstimation.from_pretrained(tmp_path / "hf").eval()
    with torch.no_grad():
        difference = relative_difference(match_transformers(ours)(frames), theirs(pixel_values=frames).predicted_depth)
    print(f"ours -> transformers, metric: max relative difference {difference:.2e}")
    assert difference <= TOLERANCE


def test_config_json_that_is_not_our_network_is_refused_in_one_line(hf_folders, tmp_path):
    _, folder, _ = hf_folders["relative"]
    config = json.loads((folder / "config.json").read_text())
    (tmp_path / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    cases = {"use_swiglu_ffn": (lambda c: c["backbone_config"].update(use_swiglu_ffn=True), "use_swiglu_ffn"),
             "hidden_size": (lambda c: c.update(neck_hidden_sizes=[8, 8, 8, 8]), "no registry encoder"),
             "type": (lambda c: c.update(fusion_hidden_size="32"), "fusion_hidden_size")}
    for edit, expected in cases.values():
        doc = json.loads(json.dumps(config))
        edit(doc)
        (tmp_path / "config.json").write_text(json.dumps(doc))
        with pytest.raises(CheckpointError) as e:
            load_model(tmp_path / "model.safetensors", expect="image")
        assert "\n" not in str(e.value) and "config.json" in str(e.value) and expected in str(e.value)


def _key_pattern(key: str) -> str:
    import re

    return re.sub(r"\.\d+\.", ".{i}.", key)


ALL_KEYS = sorted(transformers_keys(2) - {"backbone.embeddings.mask_token", "backbone.encoder.layer.1.norm1.weight"})


@settings(max_examples=40, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dropped=st.sets(st.sampled_from(ALL_KEYS), max_size=12),
       added=st.sets(st.text(st.sampled_from("abc.0123_"), min_size=1, max_size=20), max_size=3))
def test_adapter_refuses_a_partial_or_foreign_state_dict_in_one_line(dropped, added):
    """A 2-block transformers key set (layer 1's norm1 kept so that the block count stays 2) with keys dropped
    and foreign keys added: refused in one line naming each missing / unexpected key's pattern, or converted."""
    full = transformers_keys(2)
    sd = {k: torch.zeros(2, 1) for k in full - dropped}
    sd.update({k: torch.zeros(1) for k in added if k not in full})
    unexpected = {k for k in added if k not in full}
    if not dropped and not unexpected:
        assert set(transformers_to_dav2(sd)) >= {"pretrained.blocks.1.attn.qkv.weight", "depth_head.projects.0.bias"}
        return
    with pytest.raises(ValueError) as e:
        check_transformers_keys(sd)
    message = str(e.value)
    assert "\n" not in message
    shown = sorted({_key_pattern(k) for k in dropped})
    if dropped:
        assert f"missing {len(dropped)} key" in message
        assert all(p in message for p in shown[:6])
    if unexpected:
        assert f"unexpected {len(unexpected)} key" in message


def _valid_config() -> dict:
    from vda_lightning.models import transformers_config

    return transformers_config(get_config("vitt"))


_json_value = st.one_of(st.none(), st.booleans(), st.integers(-3, 600), st.floats(-1e3, 1e3, allow_nan=False),
                        st.text(max_size=8), st.lists(st.integers(-2, 600), max_size=5))
_config_keys = sorted(_valid_config()) + [f"backbone_config.{k}" for k in sorted(_valid_config()["backbone_config"])]


@settings(max_examples=40, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                                   HealthCheck.function_scoped_fixture])
@given(edits=st.dictionaries(st.sampled_from(_config_keys), _json_value, min_size=1, max_size=3))
def test_config_json_reader_reads_or_refuses_in_one_line(tmp_path, edits):
    """The config.json beside a transformers file, any of its values replaced: our model config, or one line naming
    the file (never another exception)."""
    from vda_lightning.checkpoints.transformers import TransformersFile, transformers_file

    doc = _valid_config()
    (tmp_path / "config.json").write_text(json.dumps(doc))
    assert transformers_file(tmp_path / "model.safetensors").config == get_config("vitt")  # what we write, we read
    for key, value in edits.items():
        where, _, name = key.rpartition(".")
        target = doc[where] if where else doc
        if isinstance(target, dict):  # not when backbone_config itself was replaced
            target[name] = value
    (tmp_path / "config.json").write_text(json.dumps(doc))
    try:
        found = transformers_file(tmp_path / "model.safetensors")
    except CheckpointError as e:
        assert "\n" not in str(e) and "config.json" in str(e)
    else:
        assert isinstance(found, TransformersFile) and found.config.encoder == "vitt" and found.max_depth > 0
