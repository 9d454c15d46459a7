"""`vda infer` outputs: the published run.py layout, src / depth-only videos, compressed npz, the writing progress
bar, unique output names, Ctrl-C."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import av
import cv2
import matplotlib
import numpy as np
import pytest
import torch

from vda_lightning import save_model
from vda_lightning.inference import OfflineRunner
from vda_lightning.inference.cli import main, output_names
from vda_lightning.inference.frame_sources import read_video
from vda_lightning.inference.layouts import parse_save
from vda_lightning.models import build_video_model
from vda_lightning.viz import colorize, depth_to_uint8

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tests.fakes.videos import write_clip

    d = tmp_path_factory.mktemp("outputs")
    torch.manual_seed(0)
    model = build_video_model("vitt").eval()
    metric = build_video_model("vitt", metric=True).eval()
    metric.load_state_dict(model.state_dict())
    frames = np.random.default_rng(0).integers(0, 256, (6, 28, 42, 3), dtype=np.uint8)
    clip = write_clip(d / "clip.mp4", frames, fps=8)
    for seq in ("seqA", "seqB"):
        (d / seq / "frames").mkdir(parents=True)
        for i, f in enumerate(frames):
            cv2.imwrite(str(d / seq / "frames" / f"{i:03d}.png"), f[..., ::-1])
    return {"dir": d, "model": model, "frames": frames, "clip": clip,
            "ckpt": save_model(model, d / "tiny.safetensors"), "metric": save_model(metric, d / "metric.safetensors")}


def run(args, capsys):
    try:
        code = main([str(a) for a in args] + ["--input-size", "28", "--device", "cpu"])
    except SystemExit as e:  # argparse's usage errors
        code = e.code
    return code, capsys.readouterr().err


def decode(path):
    with av.open(str(path)) as c:
        fps = float(c.streams.video[0].average_rate)
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]), fps


def test_published_layout_names_keys_and_contents(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = run([tiny["clip"], "--checkpoint", tiny["ckpt"], "--layout", "published",
                     "--save", "src,vis,npz,exr", "--output-dir", out], capsys)
    assert code == 0, err
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    assert names == ["clip_depths.npz", "clip_depths_exr", *[f"clip_depths_exr/frame_{i:05d}.exr" for i in range(6)],
                     "clip_src.mp4", "clip_vis.mp4"]  # run.py's names
    with np.load(out / "clip_depths.npz") as z:
        assert z.files == ["depths"]  # np.savez_compressed(path, depths=depths)
        depths = z["depths"]
    with zipfile.ZipFile(out / "clip_depths.npz") as z:
        assert z.getinfo("depths.npy").compress_type == zipfile.ZIP_DEFLATED
    assert depths.shape == (6, 28, 42) and depths.dtype == np.float32
    import OpenEXR

    with OpenEXR.File(str(out / "clip_depths_exr" / "frame_00005.exr")) as f:
        assert list(f.channels()) == ["Z"]
        np.testing.assert_array_equal(f.channels()["Z"].pixels, depths[5])
    vis, fps = decode(out / "clip_vis.mp4")
    assert vis.shape == (6, 28, 42, 3) and fps == 8  # depth only, at the front end's fps
    published = (np.array(matplotlib.colormaps["inferno"].colors)[
        ((depths - depths.min()) / (depths.max() - depths.min()) * 255).astype(np.uint8)] * 255).astype(np.uint8)
    grey = lambda a: np.stack([cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in a]).astype(int)  # noqa: E731
    assert np.abs(grey(vis) - grey(published)).mean() < 4  # libx264 crf 18 (4:2:0) of the published picture
    src, _ = decode(out / "clip_src.mp4")
    read, _ = read_video(tiny["clip"])  # the frames processed (noise frames: compare luma, chroma is 4:2:0)
    assert src.shape == (6, 28, 42, 3) and np.abs(grey(src) - grey(read)).mean() < 4


def test_default_layout_src_vis_depth_grayscale_and_uncompressed_npz(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = run([tiny["clip"], "--checkpoint", tiny["ckpt"], "--save", "npz,src,vis,vis-depth",
                     "--grayscale", "--no-npz-compress", "--output-dir", out], capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["clip_depths.npz", "clip_src.mp4", "clip_vis.mp4",
                                                      "clip_vis_depth.mp4"]
    with zipfile.ZipFile(out / "clip_depths.npz") as z:
        assert z.getinfo("depths.npy").compress_type == zipfile.ZIP_STORED
    depths = np.load(out / "clip_depths.npz")["depths"]
    side, _ = decode(out / "clip_vis.mp4")
    alone, _ = decode(out / "clip_vis_depth.mp4")
    assert side.shape == (6, 28, 84, 3) and alone.shape == (6, 28, 42, 3)
    grey = ((depths - depths.min()) / (depths.max() - depths.min()) * 255).astype(np.uint8)
    assert np.abs(alone.astype(int) - grey[..., None]).mean() < 4
    assert np.ptp(alone.astype(int), axis=-1).max() <= 6  # grey: the three channels agree
    assert "clip (writing)" in err and "100%" in err  # the writing phase has its own bar
    writing = [line for line in err.replace("\r", "\n").splitlines() if "clip (writing)" in line]
    assert "6/6" in writing[-1] and "/12" not in err  # each frame counted once (npz and videos in one pass)
    assert "slowest: " in writing[-1]  # the output kind taking the largest share is named


def test_visualisation_is_the_published_formula_exactly():
    rng = np.random.default_rng(3)
    d = (rng.random((4, 9, 11)) * 7.3 + 0.2).astype(np.float32)
    d_min, d_max = d.min(), d.max()
    norm = ((d - d_min) / (d_max - d_min) * 255).astype(np.uint8)  # published save_video, verbatim arithmetic
    colours = (np.array(matplotlib.colormaps["inferno"].colors)[norm] * 255).astype(np.uint8)
    np.testing.assert_array_equal(depth_to_uint8(d, float(d_min), float(d_max)), norm)
    np.testing.assert_array_equal(colorize(d, float(d_min), float(d_max)), colours)


def test_compressed_npz_is_smaller_and_loads_the_same(tiny, tmp_path):
    from vda_lightning.inference.writers import DepthSpool, write_npz

    depths = np.stack(list(OfflineRunner(tiny["model"], 28).run(iter(tiny["frames"]))))
    spool = DepthSpool(tmp_path / "spool")
    for d in depths:
        spool.append(d)
    spool.close()
    write_npz(spool, tmp_path / "c.npz", compress=True)
    write_npz(spool, tmp_path / "s.npz", compress=False)
    np.testing.assert_array_equal(np.load(tmp_path / "c.npz")["depths"], depths)
    np.testing.assert_array_equal(np.load(tmp_path / "s.npz")["depths"], depths)
    assert os.path.getsize(tmp_path / "c.npz") < os.path.getsize(tmp_path / "s.npz")


def test_published_point_clouds_in_the_output_directory(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = run([tiny["clip"], "--checkpoint", tiny["metric"], "--layout", "published", "--save", "ply",
                     "--output-dir", out], capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == [f"point{i:04d}.ply" for i in range(6)]
    code, err = run([tiny["clip"], tiny["clip"], "--checkpoint", tiny["metric"], "--layout", "published",
                     "--save", "ply", "--output-dir", tmp_path / "two"], capsys)
    assert code == 2 and "would overwrite each other" in err


def test_save_lists_and_layout_defaults():
    assert parse_save(None) == ["npz"] and parse_save(None, "published") == ["src", "vis"]
    assert parse_save("vis,vis-depth", "published") == ["vis"]  # one file, <name>_vis.mp4
    assert parse_save("vis-depth,npz,vis") == ["npz", "vis", "vis-depth"]
    with pytest.raises(ValueError, match="comma list of npz,src,vis,vis-depth,exr,png16,ply; got 'gif'"):
        parse_save("gif")


def test_inputs_sharing_a_name_are_told_apart_and_reported(tiny, tmp_path, capsys):
    a, b = tiny["dir"] / "seqA" / "frames", tiny["dir"] / "seqB" / "frames"
    out = tmp_path / "out"
    code, err = run([a, b, "--checkpoint", tiny["ckpt"], "--output-dir", out, "--no-progress"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["seqA_frames_depths.npz", "seqB_frames_depths.npz"]
    notes = [line for line in err.splitlines() if "note:" in line]
    assert len(notes) == 1 and "seqA_frames" in notes[0] and "seqB_frames" in notes[0] and str(a) in notes[0]
    names, notes = output_names([Path("x/clip.mp4"), Path("x/clip.mp4"), Path("y/other.mp4")])
    assert names == ["clip", "clip_1", "other"] and len(notes) == 1
    assert output_names([Path("a/c/v.mp4"), Path("b/c/v.mp4")])[0] == ["a_c_v", "b_c_v"]
    assert output_names([Path("a.mp4"), Path("b.mp4")]) == (["a", "b"], [])


def test_out_of_gpu_memory_is_one_line_per_input(tiny, tmp_path, capsys, monkeypatch):
    from vda_lightning.inference import offline

    def oom(self, read):  # the device stage (vda infer runs the runner's stages in threads: pipeline.py)
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(offline.OfflineRunner, "compute", oom)
    code, err = run([tiny["clip"], "--checkpoint", tiny["ckpt"], "--output-dir", tmp_path / "o", "--no-progress"],
                    capsys)
    errors = [line for line in err.splitlines() if "error" in line]
    assert code == 1 and len(errors) == 1 and "Traceback" not in err
    assert errors[0] == (f"vda-infer: error: {tiny['clip']}: out of GPU memory at --input-size 28 (--precision fp32); "
                         "try a smaller --input-size or --max-res, or fp16")
    assert list((tmp_path / "o").iterdir()) == []


def test_ctrl_c_while_writing_leaves_nothing_of_that_input(tiny, tmp_path, capsys, monkeypatch):
    from vda_lightning import viz

    calls = {"n": 0}
    real = viz.VideoWriter.write

    def interrupted_write(self, rgb):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        real(self, rgb)

    monkeypatch.setattr(viz.VideoWriter, "write", interrupted_write)
    out = tmp_path / "out"
    code, err = run([tiny["clip"], "--checkpoint", tiny["ckpt"], "--save", "npz,exr,vis", "--output-dir", out,
                     "--no-progress"], capsys)
    kind_line = f"vda-infer: {tiny['ckpt']}: "  # the model's kind, printed before inference starts
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(kind_line)]
    assert code == 130 and lines == ["vda-infer: interrupted (Ctrl-C); unfinished outputs were removed"]
    assert list(out.iterdir()) == []  # no npz (finished before the videos), no folders, no temporaries, no spool


def wait_for_state(ready, proc, what: str, guard_s: float = 900.0) -> None:
    """Poll until `ready()` holds; fail at once if `proc` ended first. `guard_s` only stops a hung run: it is no
    timing assumption (on the 2-core box at load 10 the run below took up to 55 s to start inference)."""
    deadline = time.monotonic() + guard_s
    while not ready():
        assert proc.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"no {what} after {guard_s:.0f} s: the run hangs"
        time.sleep(0.05)


def test_sigint_ends_a_real_run_with_status_130(tiny, tmp_path):
    """A real Ctrl-C (SIGINT) to `python -m vda_lightning infer` mid-run.

    The signal is sent on a state, not after a time: once the depth spool holds a first map (inference under way,
    inside the code that removes unfinished outputs), with 399 frames still to go. Measured on the 2-core box: quiet,
    7 s to inference and 3 s for the 400 frames; at load 10, 29-55 s and 82 s, then 10 s from SIGINT to exit 130.
    The old fixed 120 s wait for inference to start was within a factor of two of that; the guards here only stop
    a hung run."""
    folder = tmp_path / "long"
    folder.mkdir()
    frame = cv2.resize(tiny["frames"][0], (84, 56))
    for i in range(400):
        cv2.imwrite(str(folder / f"{i:04d}.png"), frame)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "vda_lightning", "infer", str(folder), "--checkpoint",
                             str(tiny["ckpt"]), "--input-size", "28", "--device", "cpu", "--save", "npz,vis",
                             "--output-dir", str(out), "--no-progress"], stderr=subprocess.PIPE, text=True, env=env)

    def first_map_spooled() -> bool:  # the spool (`.<name>.depths.f32.partial`) has a depth map in it
        try:
            return any(p.name.endswith(".partial") and p.stat().st_size > 0 for p in out.iterdir())
        except FileNotFoundError:  # no output folder yet, or a file went between the listing and the stat
            return False

    try:
        wait_for_state(first_map_spooled, proc, "it could be interrupted (no depth map was spooled)")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and err.strip().splitlines()[-1] == \
        "vda infer: interrupted (Ctrl-C); unfinished outputs were removed"
    assert list(out.iterdir()) == []
