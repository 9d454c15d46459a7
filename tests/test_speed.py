"""The speed levers of models/speed.py on the CPU: off by default, each one leaves the outputs (within float
reordering) and the state dict as they are, and `unapply` restores the plain model. Their timings are in
evaluation/results/ (`vda bench infer --levers`); the CUDA-only parts (graph capture) run in tests/cuda."""
from __future__ import annotations

import pytest
import torch

from vda_lightning.models import speed

from tests.helpers import checks


@pytest.fixture(scope="module")
def tiny():
    return checks.perturbed_model("vitt")


@pytest.fixture(scope="module")
def window():
    return torch.randn(1, 4, 3, 28, 42, generator=torch.Generator().manual_seed(0))


def test_parse_levers():
    assert speed.parse_levers(None) == [] and speed.parse_levers("none") == []
    assert speed.parse_levers("compile, channels_last,compile") == ["compile", "channels_last"]
    with pytest.raises(ValueError, match="unknown speed lever.*'warp'"):
        speed.parse_levers("compile,warp")


def test_channels_last_same_output_and_state_dict_and_unapply_restores(tiny, window):
    with torch.inference_mode():
        ref = tiny(window)
    keys = list(tiny.state_dict())
    speed.apply_levers(tiny, ["channels_last"])
    try:
        conv = tiny.head.scratch.refinenet1.out_conv
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)
        assert tiny.head.scratch.refinenet1.channels_last
        with torch.inference_mode():
            out = tiny(window)
        assert list(tiny.state_dict()) == keys
        assert checks.max_rel_error(out, ref) <= 1e-5
    finally:
        speed.unapply(tiny)
    assert not tiny.head.channels_last and tiny.head.scratch.refinenet1.out_conv.weight.is_contiguous()
    with torch.inference_mode():
        assert torch.equal(tiny(window), ref)  # the plain model again, bit for bit


def test_compile_wraps_the_two_entry_points_and_unapply_removes_them(tiny, window):
    with torch.inference_mode():
        ref = tiny(window)
    speed.apply_levers(tiny, ["compile"], compile_backend="eager")  # dynamo traces; no code generation (fast)
    try:
        assert "forward_features" in tiny.__dict__ and "forward_depth" in tiny.__dict__
        with torch.inference_mode():
            out = tiny(window)
        assert checks.max_rel_error(out, ref) <= 1e-6
    finally:
        speed.unapply(tiny)
    assert "forward_features" not in tiny.__dict__ and tiny.speed_levers == []


def test_cuda_graphs_is_the_eager_call_off_cuda_and_under_grad():
    calls = []

    def fn(x, k):
        calls.append(k)
        return x * k

    g = speed.CUDAGraphed(fn)
    x = torch.ones(3)
    with torch.no_grad():
        assert torch.equal(g(x, 2), x * 2)
    assert torch.equal(g(x, 3), x * 3) and calls == [2, 3] and g.graphs == {}  # nothing captured on the CPU


def test_vda_infer_speed_levers_flag(tmp_path, tiny, capsys):
    """`vda infer --speed-levers channels_last` writes the maps of the plain run (within float reordering); an
    unknown lever is a usage error naming it."""
    import cv2
    import numpy as np

    from vda_lightning import save_model
    from vda_lightning.inference import cli

    with pytest.raises(SystemExit) as e:
        cli.main(["x.mp4", "--checkpoint", "c.ckpt", "--speed-levers", "warp"])
    assert e.value.code == 2 and "--speed-levers: unknown speed lever(s) ['warp']" in capsys.readouterr().err
    clip = tmp_path / "clip"
    clip.mkdir()
    for i, f in enumerate(np.random.default_rng(0).integers(0, 256, (6, 20, 30, 3), dtype=np.uint8)):
        cv2.imwrite(str(clip / f"{i:03d}.png"), f)
    ckpt = save_model(tiny, tmp_path / "m.safetensors")
    maps = {}
    for levers in ("none", "channels_last"):
        out = tmp_path / levers
        assert cli.main([str(clip), "--checkpoint", str(ckpt), "--input-size", "28", "--device", "cpu",
                         "--output-dir", str(out), "--speed-levers", levers]) == 0
        maps[levers] = np.load(next(out.glob("*.npz")))["depths"]
    assert maps["none"].shape == (6, 20, 30) and checks.max_rel_error(maps["channels_last"], maps["none"]) <= 1e-5


def test_training_module_speed_levers_same_step_and_checkpoint_keys():
    """`model.speed_levers: [channels_last]` in a training config: the same loss and head gradients as the plain
    module (within float reordering) and the same state-dict keys."""
    from vda_lightning.training.module import VideoDepthModule

    batch = checks.synthetic_train_batch(clips=1, frames=2, images=1, size=28, device="cpu")
    steps, keys = {}, {}
    for levers in (None, ["channels_last"]):
        torch.manual_seed(0)
        module = VideoDepthModule(encoder="vitt", speed_levers=levers)
        steps[bool(levers)] = checks.train_step(module, batch)
        keys[bool(levers)] = list(module.state_dict())
    assert keys[True] == keys[False]
    assert steps[True]["loss"] == pytest.approx(steps[False]["loss"], rel=1e-5)
    assert checks.compare_grads(steps[True], steps[False])["grad_rel"] <= 1e-4
