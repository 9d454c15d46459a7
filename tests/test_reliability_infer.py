"""vda infer faults of the fault-injection pass: NaN/Inf weights or outputs never reach a file (no all-NaN npz, no
`Infinity` in depth_scale.json, non-zero exit), and an mp4 cut in half is an error, not a shorter result."""
from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from vda_lightning import save_model
from vda_lightning.inference import OfflineRunner, StreamingRunner
from vda_lightning.inference.cli import main
from vda_lightning.inference.frame_sources import open_source
from vda_lightning.inference.runtime import NonFiniteDepthError
from vda_lightning.models import build_video_model

from tests.fakes.videos import write_video


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("rel_infer")
    torch.manual_seed(0)
    model = build_video_model("vitt").eval()
    frames = np.random.default_rng(0).integers(0, 256, (6, 28, 42, 3), dtype=np.uint8)
    write_video(d / "clip.mp4", frames)
    return {"dir": d, "model": model, "frames": frames, "video": d / "clip.mp4",
            "ckpt": save_model(model, d / "tiny.safetensors")}


def run(capsys, args):
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if "error:" in line]


def test_nan_weights_are_refused_at_load(tiny, tmp_path, capsys):
    model = build_video_model("vitt").eval()
    model.load_state_dict(tiny["model"].state_dict())
    with torch.no_grad():
        dict(model.named_parameters())["head.scratch.output_conv2.2.bias"].fill_(float("inf"))
    ckpt = save_model(model, tmp_path / "inf.safetensors")
    out = tmp_path / "out"
    code, err = run(capsys, [tiny["video"], "--checkpoint", ckpt, "--output-dir", out, "--save", "npz,png16"])
    assert code == 2 and len(err) == 1
    assert str(ckpt) in err[0] and "NaN/Inf weight values in 1 tensor(s), first head.scratch.output_conv2.2.bias" \
        in err[0]
    assert not any(p for p in out.rglob("*") if p.is_file() and not p.name.startswith(".vda-write-test"))


@pytest.mark.parametrize("Runner", [OfflineRunner, StreamingRunner])
def test_the_runners_refuse_non_finite_output(tiny, Runner):
    model = build_video_model("vitt").eval()
    model.load_state_dict(tiny["model"].state_dict())
    with torch.no_grad():  # a model that turns finite weights into NaN (as an fp16 overflow would)
        dict(model.named_parameters())["head.scratch.output_conv1.bias"].fill_(float("nan"))
    with pytest.raises(NonFiniteDepthError, match="NaN/Inf depth values"):
        list(Runner(model, input_size=28).run(iter(tiny["frames"])))


def test_a_nan_model_writes_nothing_and_exits_non_zero(tiny, tmp_path, capsys, monkeypatch):
    import vda_lightning

    model = build_video_model("vitt").eval()
    model.load_state_dict(tiny["model"].state_dict())
    with torch.no_grad():
        dict(model.named_parameters())["head.scratch.output_conv1.bias"].fill_(float("nan"))
    monkeypatch.setattr(vda_lightning, "load_model", lambda *a, **k: model)  # past the load-time check
    out = tmp_path / "out"
    code, err = run(capsys, [tiny["video"], "--checkpoint", tiny["ckpt"], "--output-dir", out, "--input-size", "28",
                             "--save", "npz,png16,vis"])
    assert code == 1 and len(err) == 1 and str(tiny["video"]) in err[0] and "NaN/Inf depth" in err[0]
    assert [p.name for p in out.iterdir() if not p.name.startswith(".vda-write-test")] == []  # no npz, no json


def test_a_video_cut_in_half_is_an_error(tiny, tmp_path, capsys):
    frames = np.random.default_rng(1).integers(0, 256, (16, 28, 42, 3), dtype=np.uint8)
    whole = tmp_path / "whole.mp4"
    write_video(whole, frames, options={"movflags": "faststart"})  # the index (moov) at the front
    with av.open(str(whole)) as c:
        offsets = [p.pos for p in c.demux(video=0) if p.pos is not None]
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[:offsets[8]])  # cut half-way, at a packet boundary: decodes without error
    source = open_source(cut)
    assert source.expected_frames() == 16  # the header still promises all frames
    out = tmp_path / "out"
    code, err = run(capsys, [cut, "--checkpoint", tiny["ckpt"], "--output-dir", out, "--input-size", "28",
                             "--mode", "streaming"])
    assert code == 1 and len(err) == 1
    assert str(cut) in err[0] and "only 8 of the 16 frames its header states decode (truncated file?)" in err[0]
    assert [p.name for p in out.iterdir() if not p.name.startswith(".vda-write-test")] == []
    # the workaround the message names: --max-len with the frames that decode
    code, err = run(capsys, [cut, "--checkpoint", tiny["ckpt"], "--output-dir", out, "--input-size", "28",
                             "--mode", "streaming", "--max-len", 8])
    assert code == 0 and np.load(out / "cut_depths.npz")["depths"].shape == (8, 28, 42)
    assert len(list(open_source(whole))) == 16  # the whole file reads fully, no error
