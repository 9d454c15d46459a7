"""timm ViT backbones as the encoder (models/backbones.py, models/timm_encoder.py): DINOv2, DINOv2 with registers
and DINOv3 (RoPE, registers, patch 16), each built by timm at a small size with random weights so that the family's
structure is timm's own. Per family: our taps equal timm's `forward_intermediates`, one training step, inference
at the family's patch, a checkpoint that rebuilds the same backbone, and the encoder graph in onnxruntime."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from vda_lightning.models import build_video_model, get_config
from vda_lightning.models.backbones import head_widths, spaced_taps

FAMILIES = {"dinov2": "vit_small_patch14_dinov2", "dinov2-reg": "vit_small_patch14_reg4_dinov2",
            "dinov3": "vit_small_patch16_dinov3"}
PREFIX_TOKENS = {"dinov2": 1, "dinov2-reg": 5, "dinov3": 5}  # class token (+ 4 registers)
SMALL = {"embed_dim": 32, "depth": 4, "num_heads": 2}


@pytest.fixture(scope="module")
def models():
    """One small random model per family, taps on blocks 0, 1, 3, 3 (a repeated tap: a shallow backbone)."""
    torch.manual_seed(0)
    return {fam: build_video_model(name, layer_idx=(0, 1, 3, 3), **SMALL).eval() for fam, name in FAMILIES.items()}


def test_published_sizes_get_the_published_taps_and_head_others_the_rules():
    vits, vitl = get_config("vits"), get_config("vitl")
    for name, published in (("vit_small_patch16_dinov3", vits), ("vit_small_patch14_reg4_dinov2", vits),
                            ("vit_large_patch16_dinov3", vitl)):
        cfg = get_config(name)
        assert (cfg.layer_idx, cfg.features, cfg.out_channels, cfg.embed_dim, cfg.depth) == (
            published.layer_idx, published.features, published.out_channels, published.embed_dim, published.depth)
        assert cfg.patch_size == (16 if name.endswith("dinov3") else 14) and cfg.timm_version
        assert cfg.input_contract().patch_size == cfg.patch_size
    assert get_config("vit_small_patch16_dinov3").input_contract().network_size(480, 640, 512) == (512, 688)
    assert spaced_taps(12) == (2, 5, 8, 11) and spaced_taps(8) == (1, 3, 5, 7) and spaced_taps(2) == (0, 0, 1, 1)
    assert head_widths(384) == (64, (48, 96, 192, 384)) and head_widths(768) == (128, (96, 192, 384, 768))
    small = get_config("vit_small_patch16_dinov3", embed_dim=64, depth=8, num_heads=2)
    assert (small.layer_idx, small.features, small.out_channels) == ((1, 3, 5, 7), 32, (8, 16, 32, 64))
    assert get_config("vit_small_patch16_dinov3", layer_idx=[3, 6, 9, 11]).layer_idx == (3, 6, 9, 11)
    with pytest.raises(ValueError, match="must be four block indices"):
        get_config("vit_small_patch16_dinov3", layer_idx=[9, 3, 6, 11])
    with pytest.raises(ValueError, match="unknown encoder 'resnet50'"):
        get_config("resnet50")


@pytest.mark.parametrize("family", FAMILIES)
def test_taps_equal_timm_forward_intermediates(models, family):
    model = models[family]
    vit, patch = model.pretrained.vit, model.config.patch_size
    x = torch.randn(2, 3, 3 * patch, 2 * patch)
    with torch.no_grad():
        ours = model.forward_features(x)
        ref = vit.forward_intermediates(x, indices=[0, 1, 3], norm=True, return_prefix_tokens=True,
                                        output_fmt="NLC", intermediates_only=True)
    for (tokens, cls), block in zip(ours, (0, 1, 2, 2)):
        spatial, prefix = ref[block]
        assert prefix.shape[1] == PREFIX_TOKENS[family] and tokens.shape == (2, 6, 32)
        assert torch.equal(tokens, spatial) and torch.equal(cls, prefix[:, 0])  # registers dropped, class kept
    with pytest.raises(ValueError, match=f"multiples of {patch}"):
        model.forward_features(torch.randn(1, 3, 3 * patch + 2, 2 * patch))


@pytest.mark.parametrize("family", FAMILIES)
def test_one_training_step_moves_the_head_only(models, family):
    from vda_lightning.losses import VideoDepthLoss

    model = copy.deepcopy(models[family]).train()
    model.pretrained.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    head = [p for p in model.head.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(head, lr=1e-3)
    patch = model.config.patch_size
    frames, target = torch.randn(1, 2, 3, 2 * patch, 2 * patch), torch.rand(1, 2, 2 * patch, 2 * patch) + 0.1
    loss = VideoDepthLoss()(model(frames), target, torch.ones_like(target, dtype=torch.bool))["total_loss"]
    loss.backward()
    opt.step()
    after = model.state_dict()
    assert torch.isfinite(loss)
    assert all(torch.equal(before[k], after[k]) for k in after if k.startswith("pretrained."))
    assert any(not torch.equal(before[k], after[k]) for k in after if k.startswith("head."))


@pytest.mark.parametrize("family", FAMILIES)
def test_infer_runs_at_the_family_patch_and_a_checkpoint_rebuilds_it(models, family, tmp_path, monkeypatch):
    """Streaming for every family, the offline windows (32 frames each: the costly one) for DINOv3."""
    from vda_lightning import load_model, save_model
    from vda_lightning.inference.api import infer_video

    model = models[family]
    frames = np.random.default_rng(0).integers(0, 256, (2, 40, 56, 3), dtype=np.uint8)
    size = 2 * model.config.patch_size  # 28 or 32: the short side; 40x56 frames enter at 2 x 3 patches
    seen, features = [], model.forward_features
    monkeypatch.setattr(model, "forward_features", lambda x: seen.append(tuple(x.shape[-2:])) or features(x))
    maps = [infer_video(model, frames, input_size=size, device="cpu", mode="streaming")]
    if family == "dinov3":
        maps.append(infer_video(model, frames, input_size=size, device="cpu", mode="offline"))
    monkeypatch.undo()
    want = model.config.input_contract().network_size(40, 56, size, video=True)
    assert set(seen) == {want} and want == (2 * model.config.patch_size, 3 * model.config.patch_size)
    assert all(m.shape == (2, 40, 56) and np.isfinite(m).all() for m in maps)

    path = save_model(model, tmp_path / "model.safetensors")
    loaded = load_model(path)
    assert loaded.config == model.config  # the encoder name, its sizes and taps, the timm version
    assert loaded.config.encoder == FAMILIES[family] and loaded.config.timm_version is not None
    x = torch.randn(1, 2, 3, 2 * model.config.patch_size, 3 * model.config.patch_size)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_a_stored_timm_config_cannot_ask_for_a_larger_model_than_its_name(tmp_path):
    from vda_lightning.checkpoints import CheckpointError
    from vda_lightning.checkpoints.metadata import model_config

    cfg = get_config("vit_small_patch16_dinov3", **SMALL).to_dict()
    assert model_config(cfg, "f", CheckpointError).embed_dim == 32
    for key, value, says in (("embed_dim", 4096, "exceeds"), ("features", 999, "features"),
                             ("layer_idx", [0, 1, 2, 9], "four block indices"), ("patch_size", 14, "patch_size")):
        with pytest.raises(CheckpointError, match=says):
            model_config({**cfg, key: value}, "f", CheckpointError)


@pytest.mark.parametrize("family", FAMILIES)
def test_encoder_graph_matches_pytorch_in_onnxruntime(models, family, tmp_path):
    """The encoder graph (the part a backbone changes; the head is the published one) traced with timm's code —
    a DINOv2 table resampled by `graphs.timm_pos_embed_graph`, DINOv3's RoPE as it is — and run by onnxruntime at
    sizes other than the traced ones (`check_graph`: within 1e-4 of PyTorch)."""
    from vda_lightning.deploy.onnx_export import _finish, _trace, check_graph

    model = models[family]
    path = tmp_path / "encoder.onnx"
    _trace(model, "encoder", path, "torchscript", 17, False)
    _finish(path, "encoder", model.config, {})
    checks = check_graph(path, model, "encoder", "fp32")
    assert len(checks) == 2 and max(c["max_rel_diff"] for c in checks) < 1e-4


def test_encoder_checkpoint_from_a_local_file_in_timm_or_our_layout(models, tmp_path):
    """`encoder_checkpoint:` a timm state dict (as timm's Hub repositories hold it) or our `pretrained.vit.*` slice,
    read through the trust boundary and loaded strictly; a file of another shape is one line naming it."""
    from safetensors.torch import save_file

    from vda_lightning.checkpoints import CheckpointError
    from vda_lightning.checkpoints.encoder_weights import load_encoder_weights

    source = models["dinov3"]
    target = copy.deepcopy(source)
    vit_state = {k: v.contiguous() for k, v in source.pretrained.vit.state_dict().items()}
    ours = {"pretrained.vit." + k: v for k, v in vit_state.items()}
    for name, state in (("timm.safetensors", vit_state), ("ours.safetensors", ours)):
        for p in target.pretrained.parameters():
            p.data.zero_()
        save_file(state, tmp_path / name)
        info = load_encoder_weights(target, str(tmp_path / name))
        assert info["path"].endswith(name) and len(info["sha256"]) == 64
        assert all(torch.equal(a, b) for a, b in zip(target.pretrained.state_dict().values(),
                                                     source.pretrained.state_dict().values()))
    save_file({k: v[..., :1].contiguous() if v.dim() else v for k, v in vit_state.items()}, tmp_path / "bad.st")
    with pytest.raises(CheckpointError, match="bad.st: does not fit the vit_small_patch16_dinov3 encoder") as e:
        load_encoder_weights(target, str(tmp_path / "bad.st"))
    assert "\n" not in str(e.value)
