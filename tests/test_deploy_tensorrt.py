"""TensorRT without a GPU: the one-line error where tensorrt or CUDA is missing, the optimisation profiles worked out
from a sidecar, the trtexec line, and the builder's calls against a stand-in of the tensorrt API."""
from __future__ import annotations

import json
import sys

import pytest

from vda_lightning.deploy import tensorrt as deploy_trt
from vda_lightning.deploy.sidecar import read_sidecar
from vda_lightning.deploy.tensorrt import (
    ShapeRange,
    TensorRTUnavailable,
    build_engine,
    float32_layers,
    missing_requirements,
    parse_triple,
    profile_shapes,
    trtexec_command,
)

from tests.fakes.tensorrt_api import make_tensorrt


def test_missing_tensorrt_and_cuda_is_one_line(golden_onnx_dir, tmp_path):
    message = missing_requirements()
    assert message is not None and "\n" not in message
    import importlib.util

    import torch

    if importlib.util.find_spec("tensorrt") is None:
        assert "the tensorrt Python package is not installed (pip install tensorrt)" in message
    if not torch.cuda.is_available():
        assert "no CUDA device is visible" in message
    with pytest.raises(TensorRTUnavailable, match="--format tensorrt needs tensorrt and a CUDA device: "):
        build_engine(golden_onnx_dir / "model.onnx", tmp_path / "model.engine")
    assert not list(tmp_path.iterdir())


def test_profiles_follow_the_sidecar_shapes(golden_onnx_dir):
    shapes = ShapeRange()  # 280..518..518 x 280..518..924, 1..32..32 frames
    video = profile_shapes(read_sidecar(golden_onnx_dir / "model.onnx"), shapes)
    assert video == {"frames": ((1, 1, 3, 280, 280), (1, 32, 3, 518, 518), (1, 32, 3, 518, 924))}
    head = profile_shapes(read_sidecar(golden_onnx_dir / "head.onnx"), shapes)
    assert head["tokens_2"] == ((1, 1, 20, 20, 384), (1, 32, 37, 37, 384), (1, 32, 37, 66, 384))
    stream = profile_shapes(read_sidecar(golden_onnx_dir / "streaming.onnx"), shapes)
    assert stream["frame"] == ((1, 3, 280, 280), (1, 3, 518, 518), (1, 3, 518, 924))
    # TM1 runs on layer_4 (stride-2 conv): ceil(20/2)^2 = 100, ceil(37/2)^2 = 361, 19 * 33 = 627 rows
    assert stream["cache_tm1_attn0"] == ((100, 0, 384), (361, 31, 384), (627, 31, 384))
    # TM3 on path_3 at twice the token grid: 40*40, 74*74, 74*132
    assert stream["cache_tm3_attn1"] == ((1600, 0, 64), (5476, 31, 64), (9768, 31, 64))


def test_shape_ranges_are_checked():
    assert parse_triple("1,32,32", "frames") == (1, 32, 32) and parse_triple("518", "height") == (518, 518, 518)
    with pytest.raises(ValueError, match="MIN,OPT,MAX"):
        parse_triple("1,2", "frames")
    with pytest.raises(ValueError, match="multiples of 14"):
        ShapeRange(height=(280, 500, 518))
    # DINOv3 (patch 16): default sides in its patch, and a sidecar's patch rules the profile
    assert ShapeRange(patch=16).sizes(2) == {"batch": 1, "frames": 32, "n": 32, "h": 37, "w": 66, "context": 31}
    assert ShapeRange(patch=16).side("width") == (320, 592, 1056)
    with pytest.raises(ValueError, match="multiples of 16"):
        ShapeRange(height=(280, 518, 518), patch=16)
    sixteen = {"input_contract": {"patch": 16}, "inputs": {"frame": {"shape": [1, 3, "16*h", "16*w"]}}}
    assert profile_shapes(sixteen, ShapeRange()) == {"frame": ((1, 3, 320, 320), (1, 3, 592, 592),
                                                               (1, 3, 592, 1056))}
    with pytest.raises(ValueError, match="multiples of 16"):
        profile_shapes(sixteen, ShapeRange(height=(280, 518, 518)))
    with pytest.raises(ValueError, match="min <= opt <= max"):
        ShapeRange(frames=(8, 4, 32))
    with pytest.raises(ValueError, match="1..32"):
        ShapeRange(frames=(1, 32, 33))


def test_trtexec_line(golden_onnx_dir):
    profile = profile_shapes(read_sidecar(golden_onnx_dir / "model.onnx"), ShapeRange(frames=(1, 8, 32)))
    assert trtexec_command("model.onnx", "model.engine", profile, fp16=True) == (
        "trtexec --onnx=model.onnx --saveEngine=model.engine --minShapes=frames:1x1x3x280x280 "
        "--optShapes=frames:1x8x3x518x518 --maxShapes=frames:1x32x3x518x924 --stronglyTyped")


@pytest.mark.parametrize("strongly_typed", [True, False])
def test_engine_build_calls(golden_onnx_dir, tmp_path, monkeypatch, strongly_typed):
    trt = make_tensorrt(strongly_typed)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(deploy_trt, "missing_requirements", lambda: None)
    engine = build_engine(golden_onnx_dir / "model.onnx", tmp_path / "model.engine", ShapeRange(), fp16=True,
                          log=lambda _m: None)
    calls = trt.calls
    assert calls["profiles"] == [("frames", (1, 1, 3, 280, 280), (1, 32, 3, 518, 518), (1, 32, 3, 518, 924))]
    assert calls["profile_added"] and calls["workspace"] == 4 << 30
    if strongly_typed:  # types come from the graph; no precision flags
        assert calls["network_flags"] == 1 << 5 | 1 << 0 and not calls["flags"]
    else:  # fp16 flag + float32 norms and output tail
        assert calls["flags"] == {"fp16", "obey"}
        kept = set(calls["layer_precision"])
        assert kept == set(float32_layers(golden_onnx_dir / "model.onnx"))
        assert sum("output_conv2" in n for n in kept) >= 2 and any("LayerNorm" in n or "norm" in n for n in kept)
    assert engine.read_bytes().startswith(b"fake-engine:")
    side = json.loads((tmp_path / "model.engine.json").read_text())
    assert side["graph"] == "video" and side["precision"] == "fp16" and side["strongly_typed"] == strongly_typed
    assert side["profile"]["frames"][2] == [1, 32, 3, 518, 924] and side["trtexec"].startswith("trtexec --onnx=")
    assert side["onnx_sha256"] == read_sidecar(golden_onnx_dir / "model.onnx")["sha256"]
