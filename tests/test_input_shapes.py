"""Frames of extreme shape are checked at the door: every command that runs the model computes the network input
size first and refuses, in one line naming the input and its size (exit 2, nothing written), a frame whose resize
would leave a side under one patch. Frames the rule can still take (64x1280 at 20:1) run as documented."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vda_lightning import save_model
from vda_lightning.inference.cli import main as infer_main
from vda_lightning.inference.preprocess import Preprocessor
from vda_lightning.models import build_video_model
from vda_lightning.models.input_contract import DEFAULT_CONTRACT, FrameShapeError

from tests.fakes.videos import write_video


@pytest.fixture(scope="module")
def extreme(tmp_path_factory):
    d = tmp_path_factory.mktemp("shapes")
    torch.manual_seed(0)
    ckpt = save_model(build_video_model("vitt").eval(), d / "tiny.safetensors")
    rng = np.random.default_rng(0)
    videos = {}
    for h, w in [(64, 1280), (8, 1280), (1280, 8), (28, 42)]:
        videos[(h, w)] = d / f"v{h}x{w}.mp4"
        write_video(videos[(h, w)], rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8))
    return {"ckpt": ckpt, "videos": videos}


def test_the_limit_by_hand():
    # 518 * 1.777 / ratio must stay >= 8 (it is rounded to a multiple of 14, half to even: 7 -> 0)
    assert DEFAULT_CONTRACT.max_video_aspect(518) == pytest.approx(518 * 1.777 / 8)
    assert DEFAULT_CONTRACT.checked_network_size(8, 920, 518, video=True) == (14, 1610)  # 115:1, one patch tall
    with pytest.raises(FrameShapeError, match=r"clip\.mp4: a 8x928 frame \(aspect 116:1\) would enter the network "
                                              r"at 0x0"):
        DEFAULT_CONTRACT.checked_network_size(8, 928, 518, video=True, what="clip.mp4")
    assert DEFAULT_CONTRACT.checked_network_size(64, 1280, 518, video=True) == (42, 840)  # 20:1 runs at 3x60 patches
    assert DEFAULT_CONTRACT.checked_network_size(8, 1280, 518, video=False) == (518, 82880)  # images: no aspect rule
    with pytest.raises(FrameShapeError):
        Preprocessor(1280, 8, 518)  # the Python API refuses too, before any tensor is made


@pytest.mark.parametrize("shape", [(8, 1280), (1280, 8)])
@pytest.mark.parametrize("mode", ["offline", "streaming"])
def test_infer_refuses_in_one_line_and_writes_nothing(extreme, shape, mode, tmp_path, capsys):
    out = tmp_path / "out"
    code = infer_main([str(extreme["videos"][shape]), "--checkpoint", str(extreme["ckpt"]), "--output-dir",
                       str(out), "--mode", mode, "--save", "npz,png16,vis"], prog="vda infer")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("vda infer: error: ")
    h, w = shape
    assert str(extreme["videos"][shape]) in err[0] and f"{h}x{w} frame" in err[0]
    assert list(out.iterdir()) == []  # no partial output, not even a hidden spool


def test_a_bad_input_among_good_ones_stops_before_any_work(extreme, tmp_path, capsys):
    out = tmp_path / "out"
    code = infer_main([str(extreme["videos"][(28, 42)]), str(extreme["videos"][(8, 1280)]), "--checkpoint",
                       str(extreme["ckpt"]), "--output-dir", str(out)])
    assert code == 2 and "8x1280" in capsys.readouterr().err
    assert list(out.iterdir()) == []


def test_64x1280_runs_as_documented(extreme, tmp_path, capsys):
    out = tmp_path / "out"
    code = infer_main([str(extreme["videos"][(64, 1280)]), "--checkpoint", str(extreme["ckpt"]), "--output-dir",
                       str(out), "--mode", "streaming"])
    assert code == 0, capsys.readouterr().err
    depth = np.load(out / "v64x1280_depths.npz")["depths"]
    assert depth.shape == (2, 64, 1280) and np.isfinite(depth).all()


def test_eval_refuses_a_benchmark_of_extreme_frames(tmp_path, capsys, extreme):
    from vda_lightning.evaluation.cli import main as eval_main

    from tests.fakes.benchmark import make_tiny_benchmark

    make_tiny_benchmark(tmp_path, "kitti", sequences=1, frames=2, height=8, width=1280)
    code = eval_main(["--benchmark", "kitti", "--benchmark-root", str(tmp_path / "benchmark"), "--checkpoint",
                      str(extreme["ckpt"]), "--output", str(tmp_path / "r.json"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len([e for e in err if "error:" in e]) == 1
    assert "seq00/rgb/00000.png: a 8x1280 frame" in err[-1]
    assert not (tmp_path / "r.json").exists()


def test_bench_refuses_extreme_frame_sizes(capsys):
    from vda_lightning.bench.infer import run_infer_bench

    with pytest.raises(SystemExit) as e:
        run_infer_bench(["--height", "8", "--width", "1280", "--encoder", "vitt"])
    assert e.value.code == 2 and "8x1280 frame" in capsys.readouterr().err
