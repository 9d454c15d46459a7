"""Running metric models: `vda-infer --metric/--relative` over a file that does not say, the inter-window alignment
skipped for metric models (parity with the published loop, `inference/baseline.py`, on random weights), and point
clouds with the frame's intrinsics."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from vda_lightning.inference.baseline import published_loop
from vda_lightning.inference.cli import main
from vda_lightning.models import build_video_model

FRAMES, H, W = 40, 28, 42  # 40 frames: two windows, so the inter-window alignment matters


def write_pngs(folder, frames):
    folder.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:04d}.png"), f[..., ::-1])
    return folder


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    return code, err


@pytest.fixture(scope="module")
def neutral(tmp_path_factory):
    """Random vitt weights as a plain state dict under a neutral name (no metadata, no sidecar), a 40-frame clip."""
    d = tmp_path_factory.mktemp("neutral")
    torch.manual_seed(0)  # a seed whose random ReLU head is not dead (seeds 2, 3, 5-7 output ~0 everywhere)
    model = build_video_model("vitt").eval()
    with torch.no_grad():  # fresh temporal modules output zero: the model would be per-frame, and window 1's key
        for name, p in model.named_parameters():  # frames would equal window 0's (scale 1, shift 0 either way)
            if "proj_out" in name:
                p.normal_(0.0, 0.05)
    torch.save(model.state_dict(), d / "weights.pth")
    frames = np.random.default_rng(1).integers(0, 256, (FRAMES, H, W, 3), dtype=np.uint8)
    metric = build_video_model("vitt", metric=True).eval()
    metric.load_state_dict(model.state_dict())
    return {"dir": d, "ckpt": d / "weights.pth", "folder": write_pngs(d / "clip", frames), "frames": frames,
            "relative_ref": published_loop(model, frames, input_size=H), "metric_ref": published_loop(metric, frames,
                                                                                                     input_size=H)}


def test_metric_switch_runs_a_neutral_file_as_metric_without_window_alignment(neutral, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = run_cli([neutral["folder"], "--checkpoint", neutral["ckpt"], "--metric", "--input-size", H,
                         "--save", "npz,ply", "--focal-length-x", 30, "--focal-length-y", 20, "--output-dir", out],
                        capsys)
    assert code == 0, err
    assert "metric depth model (from the command line)" in err
    depths = np.load(out / "clip_depths.npz")["depths"]
    ref, rel = neutral["metric_ref"], neutral["relative_ref"]
    scale = np.abs(ref).max()
    print(f"metric vs published metric loop: max |diff| {np.abs(depths - ref).max():.2e} (scale {scale:.3f}); "
          f"vs the relative (aligned) loop: {np.abs(depths - rel).max():.2e}")
    assert np.abs(depths - ref).max() <= 1e-4 * scale
    assert np.abs(depths[32:] - rel[32:]).max() > max(1e-3 * scale, 100 * np.abs(depths - ref).max())  # unaligned
    assert np.abs(depths[:24] - rel[:24]).max() <= 1e-4 * scale  # the first window needs no alignment either way
    plys = sorted((out / "clip_ply").glob("*.ply"))
    assert len(plys) == FRAMES
    camera = json.loads((out / "clip_ply" / "camera.json").read_text())
    assert (camera["fx"], camera["fy"], camera["cx"], camera["cy"]) == (30, 20, W / 2, H / 2)
    assert camera["source"] == "--focal-length-x/-y" and "fx 30.00, fy 20.00" in err
    header = plys[5].read_bytes().split(b"end_header\n")[0].decode()
    assert "comment camera fx 30.00, fy 20.00, cx 21.00, cy 14.00 px (--focal-length-x/-y)" in header


def test_a_silent_file_is_probed_then_taken_as_relative(neutral, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = run_cli([neutral["folder"], "--checkpoint", neutral["ckpt"], "--input-size", H, "--save", "npz",
                         "--output-dir", out], capsys)
    assert code == 0 and "a probe was inconclusive" in err and "pass --metric" in err
    depths = np.load(out / "clip_depths.npz")["depths"]
    assert np.abs(depths - neutral["relative_ref"]).max() <= 1e-4 * np.abs(neutral["relative_ref"]).max()
    code, err = run_cli([neutral["folder"], "--checkpoint", neutral["ckpt"], "--relative", "--input-size", H,
                         "--save", "ply", "--output-dir", out], capsys)
    assert code == 2 and "--save ply needs a metric model" in err and "--metric" in err
    assert "from the command line" in err  # --relative: no probe


@pytest.mark.parametrize("layout", ["txt", "json"])
def test_point_clouds_use_the_inputs_intrinsics_rescaled_with_the_frames(neutral, tmp_path, capsys, layout):
    native = np.repeat(np.repeat(neutral["frames"][:6], 2, axis=1), 2, axis=2)  # 56 x 84 input
    folder = write_pngs(tmp_path / "big", native)
    K = np.array([[60.0, 0, 40.5], [0, 50.0, 26.5], [0, 0, 1]])
    if layout == "txt":
        intr = tmp_path / "K.txt"
        np.savetxt(intr, K)
    else:  # a camera stated for a 4x larger export of the same frames
        intr = tmp_path / "camera.json"
        intr.write_text(json.dumps({"fx": 240.0, "fy": 200.0, "cx": 163.5, "cy": 107.5, "width": 336,
                                    "height": 224}))
    out = tmp_path / "out"
    code, err = run_cli([folder, "--checkpoint", neutral["ckpt"], "--metric", "--input-size", H, "--max-res", W,
                         "--save", "npz,ply", "--intrinsics", intr, "--output-dir", out], capsys)
    assert code == 0, err
    camera = json.loads((out / "big_ply" / "camera.json").read_text())
    # processed frames are 28 x 42: K scales by 1/2 (txt, for the 56 x 84 input) or 1/8 (json, for 224 x 336)
    assert (camera["width"], camera["height"]) == (W, H)
    assert camera["fx"] == pytest.approx(30.0) and camera["fy"] == pytest.approx(25.0)
    assert camera["cx"] == pytest.approx(20.0) and camera["cy"] == pytest.approx(13.0)
    assert "rescaled" in camera["source"] and str(intr) in camera["source"]
    depths = np.load(out / "big_depths.npz")["depths"]
    body = (out / "big_ply" / "000002.ply").read_bytes().split(b"end_header\n")[1]
    pts = np.frombuffer(body, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("r", "u1"), ("g", "u1"), ("b", "u1")])
    v, u = 3, 30
    np.testing.assert_allclose(pts["x"][v * W + u], (u - 20.0) / 30.0 * depths[2, v, u], rtol=1e-5)
    np.testing.assert_allclose(pts["y"][v * W + u], (v - 13.0) / 25.0 * depths[2, v, u], rtol=1e-5)


def test_bad_intrinsics_are_one_line_errors(neutral, tmp_path, capsys):
    bad = tmp_path / "K.txt"
    bad.write_text("1 2\n3 4\n")
    code, err = run_cli([neutral["folder"], "--checkpoint", neutral["ckpt"], "--metric", "--save", "ply",
                         "--intrinsics", bad, "--output-dir", tmp_path / "o"], capsys)
    lines = [ln for ln in err.splitlines() if ln.startswith("vda-infer: error")]
    assert code == 2 and len(lines) == 1 and str(bad) in lines[0] and "3x3" in lines[0]
    code, err = run_cli([neutral["folder"], "--checkpoint", neutral["ckpt"], "--metric", "--save", "ply",
                         "--intrinsics", bad, "--focal-length-x", 5, "--output-dir", tmp_path / "o"], capsys)
    assert code == 2 and "give one of them" in err


def test_a_canonical_camera_model_gives_metres_for_the_camera_at_hand(neutral, tmp_path, capsys):
    import dataclasses

    from vda_lightning import load_model, save_model

    model = load_model(neutral["ckpt"], metric=True)
    model.config = dataclasses.replace(model.config, canonical_focal=20.0)
    ckpt = save_model(model, tmp_path / "canonical.safetensors")
    out = tmp_path / "out"
    code, err = run_cli([neutral["folder"], "--checkpoint", ckpt, "--input-size", H, "--save", "npz",
                         "--focal-length-x", 50, "--output-dir", out], capsys)
    assert code == 0, err
    depths = np.load(out / "clip_depths.npz")["depths"]
    ref = neutral["metric_ref"] * 2.5  # fx 50 / canonical 20
    np.testing.assert_allclose(depths, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    code, err = run_cli([neutral["folder"], "--checkpoint", ckpt, "--save", "npz", "--output-dir", out], capsys)
    assert code == 2 and "canonical camera" in err and "--intrinsics" in err


@pytest.mark.parametrize("saved, flag", [("video", "--metric"), ("metric", "--relative")])
def test_a_flag_that_contradicts_the_checkpoints_metadata_is_refused(tiny_checkpoints, neutral, tmp_path, capsys,
                                                                     saved, flag):
    """Issue 24: `--metric` on a checkpoint whose own metadata says relative ran without a word. The metadata
    (our config in the safetensors header) wins over the flag: one line naming the file and what it says."""
    ckpt = tiny_checkpoints[saved]
    out = tmp_path / "out"
    code, err = run_cli([neutral["folder"], "--checkpoint", ckpt, flag, "--input-size", H, "--output-dir", out],
                        capsys)
    lines = [ln for ln in err.splitlines() if ln.startswith("vda-infer: error")]
    says = "a relative disparity" if saved == "video" else "a metric depth"
    assert code == 2 and lines == [f"vda-infer: error: {ckpt}: its metadata says it is {says} model; {flag} cannot "
                                   "override what the file records (it stands in only for a file that does not "
                                   f"say): drop {flag}"]
    assert [p.name for p in out.iterdir() if not p.name.startswith(".vda-write-test")] == []


def test_a_flag_that_agrees_with_the_metadata_or_overrides_a_file_name_is_taken(tiny_checkpoints, neutral, tmp_path):
    from vda_lightning.cli.options import load_model_kind

    model = load_model_kind(tiny_checkpoints["metric"], None, True)
    assert model.config.metric and model.kind_source == "argument"
    named = tmp_path / "metric_video_depth_anything_vitt.pth"  # no metadata: the published name says metric
    named.write_bytes(neutral["ckpt"].read_bytes())
    model = load_model_kind(named, None, None)
    assert model.config.metric and model.kind_source == "name"
    model = load_model_kind(named, None, False)
    assert not model.config.metric and model.kind_source == "argument"
