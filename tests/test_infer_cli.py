"""`vda-infer` end to end: golden parity through PNG folders, every output format, bad inputs."""
from __future__ import annotations

import copy
import dataclasses
import json

import av
import cv2
import numpy as np
import pytest

from vda_lightning.inference import OfflineRunner, StreamingRunner
from vda_lightning.inference.cli import main
from vda_lightning.inference.frame_sources import open_source

from tests.fakes.videos import write_video


def write_pngs(folder, frames):
    folder.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"frame_{i}.png"), f[..., ::-1])  # unpadded numbers: natural order matters
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_model, tiny_checkpoints):
    """The shared tiny model (relative and metric checkpoints) and a 26-frame 28x42 clip as mp4 and as PNGs."""
    d = tmp_path_factory.mktemp("tiny")
    frames = np.random.default_rng(0).integers(0, 256, (26, 28, 42, 3), dtype=np.uint8)
    write_video(d / "clip.mp4", frames)
    return {
        "dir": d, "model": tiny_model, "frames": frames,
        "ckpt": tiny_checkpoints["video"], "metric_ckpt": tiny_checkpoints["metric"],
        "video": d / "clip.mp4", "folder": write_pngs(d / "pngs", frames),
    }


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("vda-infer: error")]
    return code, errors


def test_cli_reproduces_the_published_long_video_reference(golden_dir, tmp_path, capsys):
    case = np.load(golden_dir / "long_video_case.npz")
    folder = write_pngs(tmp_path / "frames", case["frames"])
    code, errors = run_cli([folder, "--checkpoint", golden_dir / "vda_vits_random.safetensors", "--encoder", "vits",
                            "--input-size", 70, "--precision", "fp32", "--save", "npz",
                            "--output-dir", tmp_path / "out"], capsys)
    assert code == 0 and not errors
    depths = np.load(tmp_path / "out" / "frames_depths.npz")["depths"]
    ref = case["depths"]
    assert depths.shape == ref.shape and depths.dtype == np.float32
    assert np.abs(depths - ref).max() <= 1e-4 * np.abs(ref).max()


def test_all_outputs_agree_with_the_runner(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    code, errors = run_cli([tiny["video"], tiny["folder"], "--checkpoint", tiny["ckpt"], "--input-size", 28,
                            "--save", "npz,png16,exr,vis", "--output-dir", out], capsys)
    assert code == 0 and not errors
    expected = np.stack(list(OfflineRunner(tiny["model"], 28).run(iter(tiny["frames"]))))
    from_pngs = np.load(out / "pngs_depths.npz")["depths"]
    np.testing.assert_allclose(from_pngs, expected, rtol=1e-5, atol=1e-6)  # lossless input
    depths = np.load(out / "clip_depths.npz")["depths"]  # lossy h264 input: shapes and semantics only
    assert depths.shape == (26, 28, 42) and (depths >= 0).all()
    side = json.loads((out / "clip_png16" / "depth_scale.json").read_text())
    assert side["kind"] == "relative_disparity" and side["frames"] == 26
    png = cv2.imread(str(out / "clip_png16" / "000007.png"), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint16 and np.abs(png / side["scale"] - depths[7]).max() <= 0.5 / side["scale"] + 1e-7
    import OpenEXR

    with OpenEXR.File(str(out / "clip_exr" / "000025.exr")) as f:
        np.testing.assert_array_equal(f.channels()["Z"].pixels, depths[25])
    with av.open(str(out / "clip_vis.mp4")) as c:
        vis = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(vis) == 26 and vis[0].shape == (28, 84, 3)  # input | depth
    assert not list(out.glob(".*"))  # no temporary names left behind


def test_streaming_mode_and_metric_point_clouds(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    code, errors = run_cli([tiny["folder"], "--checkpoint", tiny["metric_ckpt"], "--mode", "streaming",
                            "--input-size", 28,
                            "--save", "npz,ply,png16", "--focal-length-x", 100, "--focal-length-y", 50,
                            "--output-dir", out], capsys)
    assert code == 0 and not errors
    depths = np.load(out / "pngs_depths.npz")["depths"]
    metric = copy.deepcopy(tiny["model"])
    metric.config = dataclasses.replace(metric.config, metric=True)
    expected = np.stack(list(StreamingRunner(metric, 28).run(iter(tiny["frames"]))))
    np.testing.assert_allclose(depths, expected, rtol=1e-5, atol=1e-6)
    assert json.loads((out / "pngs_png16" / "depth_scale.json").read_text())["kind"] == "metric_depth"
    raw = (out / "pngs_ply" / "000003.ply").read_bytes()
    header, body = raw.split(b"end_header\n")
    assert b"element vertex 1176" in header  # 28 * 42
    pts = np.frombuffer(body, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("r", "u1"), ("g", "u1"), ("b", "u1")])
    np.testing.assert_allclose(pts["z"], depths[3].ravel())
    v, u = 5, 40  # pinhole with the principal point at the centre
    np.testing.assert_allclose(pts["x"][v * 42 + u], (u - 21) / 100 * depths[3, v, u], rtol=1e-6)
    np.testing.assert_allclose(pts["y"][v * 42 + u], (v - 14) / 50 * depths[3, v, u], rtol=1e-6)
    assert (pts["r"][v * 42 + u], pts["g"][v * 42 + u]) == tuple(tiny["frames"][3, v, u, :2])


def test_frame_folder_order_and_source_options(tiny):
    src = open_source(tiny["folder"], max_len=5, target_fps=10)  # folders count as 30 fps: every 3rd frame
    frames = list(src)
    assert len(frames) == 5
    np.testing.assert_array_equal(frames[4], tiny["frames"][12])  # frame_12 after frame_9 (natural order)
    small = next(iter(open_source(tiny["folder"], max_res=21)))
    assert small.shape == (14, 22, 3)  # 28x42 * 0.5 = 14x21, odd side bumped to even


@pytest.fixture()
def bad(tiny, tiny_checkpoints, tmp_path):
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("this is not a video\n")
    empty = tmp_path / "empty.avi"
    with av.open(str(empty), "w") as c:  # a valid container with a video stream but no frames (AVI keeps it)
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        c.start_encoding()
    broken = write_pngs(tmp_path / "broken", tiny["frames"][:6])
    (broken / "frame_3.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    image_ckpt = tiny_checkpoints["image"]
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    return {"not_video": not_video, "empty": empty, "broken": broken, "image_ckpt": image_ckpt, "blocker": blocker}


@pytest.mark.parametrize("case, cause", [
    ("missing", "no such file"),
    ("not_video", "not a readable video"),
    ("empty", "contains no frames"),
    ("broken", "unreadable image"),
])
def test_bad_inputs_give_one_line_errors_and_no_output(tiny, bad, tmp_path, capsys, case, cause):
    path = tmp_path / "nowhere.mp4" if case == "missing" else bad[case]
    out = tmp_path / "out"
    also_good = [tiny["folder"]] if case == "broken" else []  # a good input after a failed one still runs
    code, errors = run_cli([path, *also_good, "--checkpoint", tiny["ckpt"], "--input-size", 28,
                            "--save", "npz,png16,vis", "--output-dir", out], capsys)
    assert code == 1 and len(errors) == 1
    named = path / "frame_3.png" if case == "broken" else path
    assert str(named) in errors[0] and cause in errors[0]
    # no partial output, no temporary names (a missing input is refused before the output folder is made)
    left = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert left == (["pngs_depths.npz", "pngs_png16", "pngs_vis.mp4"] if also_good else [])


def test_wrong_checkpoint_and_unwritable_output_dir(tiny, bad, tmp_path, capsys):
    code, errors = run_cli([tiny["folder"], "--checkpoint", bad["image_ckpt"], "--output-dir", tmp_path / "o"], capsys)
    # an image-model checkpoint is refused by the video loader
    assert code == 2 and len(errors) == 1 and str(bad["image_ckpt"]) in errors[0] and "image" in errors[0]
    code, errors = run_cli([tiny["folder"], "--checkpoint", tiny["ckpt"], "--encoder", "vits", "--input-size", 28,
                            "--output-dir", tmp_path / "o"], capsys)
    assert code == 2 and len(errors) == 1 and "vitt" in errors[0]  # encoder mismatch names the real one
    code, errors = run_cli([tiny["folder"], "--checkpoint", tiny["ckpt"], "--output-dir", bad["blocker"] / "sub"],
                           capsys)
    assert code == 2 and len(errors) == 1 and "not writable" in errors[0] and str(bad["blocker"] / "sub") in errors[0]
    code, errors = run_cli([tiny["folder"], "--checkpoint", tiny["ckpt"], "--save", "ply", "--input-size", 28,
                            "--output-dir", tmp_path / "o"], capsys)
    assert code == 2 and "metric" in errors[0]
