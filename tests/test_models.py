"""Model parity with the published code (../shared/golden) and the published key layout."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from vda_lightning.models import (
    build_image_model,
    build_video_model,
    interpolate_pos_embed,
    video_model_from_image_model,
)

TOL = 1e-4  # max|ours - ref| <= TOL * max|ref|; we measure ~2e-6


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return ((ours - ref).abs().max() / ref.abs().max()).item()


@pytest.mark.parametrize("case", ["a", "b"])
def test_image_model_matches_published(golden_dir, golden_image_state_dict, case):
    model = build_image_model("vits").eval()
    model.load_state_dict(golden_image_state_dict, strict=True)
    cases = load_file(str(golden_dir / "dav2_image_cases.safetensors"))
    with torch.no_grad():
        out = model(cases[f"{case}.input"])
    assert rel_err(out, cases[f"{case}.output"]) < TOL


def test_video_model_from_image_checkpoint_equals_image_model_per_frame(golden_image_state_dict):
    image = build_image_model("vits").eval()
    image.load_state_dict(golden_image_state_dict, strict=True)
    video = video_model_from_image_model(image).eval()
    x = torch.randn(1, 4, 3, 56, 84)
    with torch.no_grad():
        per_frame = image(x[0])
        clip = video(x)[0]
    assert (clip - per_frame).abs().max().item() <= 1e-5 * per_frame.abs().max().item()


@pytest.mark.parametrize(
    "name,params,keys", [("vits", 29_035_137, 351), ("vitb", 114_441_409, 351), ("vitl", 384_390_337, 519)]
)
def test_state_dict_counts(name, params, keys):
    sd = build_video_model(name).state_dict()
    assert len(sd) == keys
    assert sum(v.numel() for k, v in sd.items() if not k.endswith(".pe")) == params


def test_vits_keys_and_shapes_equal_published_layout(golden_state_dict):
    ours = {k: tuple(v.shape) for k, v in build_video_model("vits").state_dict().items()}
    ref = {k: tuple(v.shape) for k, v in golden_state_dict.items()}
    assert ours == ref


def test_positional_encoding_buffer_is_the_published_sinusoid(golden_state_dict):
    ours = build_video_model("vits").state_dict()
    for k, v in golden_state_dict.items():
        if k.endswith("pos_encoder.pe"):
            # the golden file is stored in float16
            assert torch.allclose(ours[k], v, atol=1e-3)


def test_pos_embed_resize_uses_scale_factor_with_offset():
    table = torch.randn(1, 1 + 37 * 37, 8)
    assert interpolate_pos_embed(table, 37, 37) is table  # the square 518 input bypasses it
    resized = interpolate_pos_embed(table, 20, 37)
    assert resized.shape == (1, 1 + 20 * 37, 8)
    assert torch.equal(resized[:, 0], table[:, 0])
    # even the 37-wide axis is resampled (step 37/37.1), unlike an exact-size resize
    assert not torch.allclose(resized[:, 1:].reshape(20, 37, 8)[0], table[:, 1:].reshape(37, 37, 8)[0])


def test_rejects_sizes_not_multiple_of_14():
    model = build_video_model("vits").eval()
    with pytest.raises(ValueError, match="multiples of 14"):
        model(torch.zeros(1, 1, 3, 50, 56))


def test_cpu_autocast_runs_in_bfloat16_and_stays_close():
    torch.manual_seed(0)
    model = build_video_model("vitt").eval()
    x = torch.randn(1, 2, 3, 42, 42)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    assert low.dtype == torch.bfloat16  # the CUDA-only fp32 guard does not switch CPU autocast off
    assert (low.float() - ref).abs().max().item() < 0.05 * ref.abs().max().item() + 1e-3


def test_timm_forward_features_equals_last_intermediate_layer():
    torch.manual_seed(0)
    encoder = build_video_model("vitt").pretrained.eval()
    x = torch.randn(2, 3, 42, 70)
    with torch.no_grad():
        tokens = encoder.forward_features(x)
        (last, cls), = encoder.get_intermediate_layers(x, n=[3])
    assert tokens.shape == (2, 1 + 3 * 5, 192)
    assert torch.equal(tokens[:, 1:], last) and torch.equal(tokens[:, 0], cls)
