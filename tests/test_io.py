"""The I/O layer: readers (each format, each error naming the file), the benchmark index, atomic writes, rank."""
from __future__ import annotations

import json
import os
import stat

import cv2
import numpy as np
import pytest

from vda_lightning.io import (
    AtomicWrite,
    BenchmarkError,
    ReadError,
    atomic_path,
    iter_video_frames,
    list_files,
    probe_video,
    rank_world,
    read_benchmark_index,
    read_depth,
    read_frame,
    read_frames,
    read_npy,
    write_dpt,
    write_json_atomic,
)


def test_depth_readers(tmp_path):
    d = np.random.default_rng(1).uniform(0.1, 60, (6, 7)).astype(np.float32)
    mm = np.rint(d * 1000).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "d.png"), mm)
    np.testing.assert_array_equal(read_depth(str(tmp_path / "d.png"), 1000.0), mm.astype(np.float32) / 1000)
    # the benchmark protocol's float64 (published eval.py: cv2.imread(path, -1) / factor)
    gt = read_depth(tmp_path / "d.png", 1000.0, dtype=np.float64)
    assert gt.dtype == np.float64 and np.array_equal(gt, cv2.imread(str(tmp_path / "d.png"), -1) / 1000.0)
    np.save(tmp_path / "d.npy", d)
    np.testing.assert_array_equal(read_depth(str(tmp_path / "d.npy")), d)
    np.savez(tmp_path / "d.npz", depth=d * 2)
    np.testing.assert_array_equal(read_depth(str(tmp_path / "d.npz"), 2.0), d)
    write_dpt(str(tmp_path / "d.dpt"), d)
    np.testing.assert_array_equal(read_depth(str(tmp_path / "d.dpt")), d)
    import OpenEXR

    OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, {"Z": d}).write(
        str(tmp_path / "d.exr"))
    np.testing.assert_array_equal(read_depth(str(tmp_path / "d.exr")), d)
    with open(tmp_path / "d.pfm", "wb") as f:  # PFM stores rows bottom-up, little-endian for a negative scale
        f.write(b"Pf\n7 6\n-1.0\n" + np.flipud(d).astype("<f4").tobytes())
    np.testing.assert_array_equal(read_depth(str(tmp_path / "d.pfm")), d)


@pytest.mark.parametrize("name, content, cause", [
    ("bad.dpt", b"\x00" * 20, "not a Sintel .dpt file"),
    ("bad.npy", b"not numpy", "not a readable .npy header"),  # trust.load_npy's words
    ("bad.png", b"\x89PNG garbage", "unreadable image"),  # trust.read_image: no header, nothing decoded
    ("bad.pfm", b"Pf\nseven six\n-1\n", "PFM header"),
    ("d.jpg", b"x", "unknown depth format '.jpg'"),
])
def test_depth_read_errors_name_file_and_cause(tmp_path, name, content, cause):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ReadError, match=cause) as err:
        read_depth(tmp_path / name, what="ground-truth depth")
    assert str(tmp_path / name) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ReadError, match="missing.png: ground-truth depth file does not exist"):
        read_depth(tmp_path / "missing.png", what="ground-truth depth")
    with pytest.raises(ReadError, match="prediction not found"):
        read_npy(tmp_path / "none.npy", "prediction")


def test_frames_in_natural_order_rgb_and_one_size(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (6, 8, 3), dtype=np.uint8) for _ in range(3)]
    for i, f in zip((2, 10, 9), frames):
        cv2.imwrite(str(tmp_path / f"f_{i}.png"), f[..., ::-1])  # cv2 writes BGR
    (tmp_path / "notes.txt").write_text("x")
    files = list_files(tmp_path, (".png", ".jpg"))
    assert [p.name for p in files] == ["f_2.png", "f_9.png", "f_10.png"]
    np.testing.assert_array_equal(np.stack(list(read_frames(files))), np.stack([frames[0], frames[2], frames[1]]))
    assert list_files(tmp_path / "nowhere", (".png",)) == []
    cv2.imwrite(str(tmp_path / "f_11.png"), np.zeros((4, 8, 3), np.uint8))
    with pytest.raises(ReadError, match=r"f_11.png: frame size 8x4 differs from the first frame's 8x6 .*f_2.png"):
        list(read_frames(list_files(tmp_path, (".png",))))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ReadError, match="broken.png: unreadable image"):
        read_frame(tmp_path / "broken.png")


def test_video_probe_and_frames(tmp_path):
    from vda_lightning.viz import VideoWriter

    with VideoWriter(tmp_path / "v.mp4", fps=10) as w:
        for i in range(4):
            w.write(np.full((16, 24, 3), 40 * i, np.uint8))
    info = probe_video(tmp_path / "v.mp4")
    assert info.fps == 10 and info.frames == 4
    frames = list(iter_video_frames(tmp_path / "v.mp4"))
    assert len(frames) == 4 and frames[0].shape == (16, 24, 3) and abs(int(frames[3].mean()) - 120) <= 2
    (tmp_path / "x.mp4").write_text("not a video")
    with pytest.raises(ReadError, match="x.mp4: not a readable video"):
        probe_video(tmp_path / "x.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4", "x.mp4"]  # no temporary left


def _index(tmp_path, doc) -> str:
    path = tmp_path / "b.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_benchmark_index_one_parser_two_views(tmp_path):
    from vda_lightning.data.manifests import read_benchmark_json
    from vda_lightning.io.benchmarks import read_sequences

    frame = lambda i: {"image": f"rgb/{i}.png", "gt_depth": f"d/{i}.png", "factor": 256}
    doc = {"kitti": [{"zeta": [frame(0), frame(1)]}, {"alpha": [frame(2)]}], "bonn": [{"b": [frame(3)]}]}
    path = _index(tmp_path, doc)
    seqs = read_benchmark_index(path)
    assert [(s.dataset, s.name, len(s.frames)) for s in seqs] == [("kitti", "zeta", 2), ("kitti", "alpha", 1),
                                                                  ("bonn", "b", 1)]
    assert seqs[0].frames[1].factor == 256.0 and seqs[0].root == tmp_path
    assert [s.name for s in read_sequences(path, "kitti")] == ["alpha", "zeta"]  # evaluation: sorted by name
    specs = read_benchmark_json(path, ["kitti"])  # vda-shard: file order, absolute paths
    assert [s.name for s in specs] == ["zeta", "alpha"]
    assert specs[0].depths == [str(tmp_path / "d/0.png"), str(tmp_path / "d/1.png")] and specs[0].factor == 256.0


@pytest.mark.parametrize("doc, need_pose, cause", [
    ("{not json", False, "not valid JSON"),
    ({"bonn": []}, False, "expected a top-level key 'kitti'"),
    ({"kitti": [{"s": [{"image": "a.png", "factor": 1}]}]}, False, "sequence 's' frame 0 lacks gt_depth"),
    ({"kitti": [{"s": [{"image": "a", "gt_depth": "b", "factor": 1}]}]}, True, "lacks K, pose (needed for TAE)"),
    ({"kitti": [{"s": []}, {"s": []}]}, False, "duplicate sequence names"),
    ({"kitti": [{"s": [{"image": "a", "gt_depth": "b", "factor": "x"}]}]}, False,
     "sequence 's' frame 0: factor: Input should be a valid number (got 'x')"),
    ({"kitti": [{"s": [{"image": "../a.png", "gt_depth": "b", "factor": 1}]}]}, False,
     "sequence 's' frame 0: image '../a.png' leaves its folder"),
    ({"kitti": [{"s": [{"image": "a", "gt_depth": "b", "factor": 1, "K": [[1, 0], [0, 1]]}]}]}, False,
     "frame 0: K: Value error, K must be 3x3 or 4x4"),
    ({"kitti": [{"s": [{"image": "a", "gt_depth": "b", "factor": 1, "K": [[1, 0, 0]] * 3, "pose": None}]}]}, True,
     "frame 0 lacks pose (needed for TAE)"),  # vda prepare-benchmark writes null for ScanNet's untracked frames
    ({"kitti": []}, False, "no sequences under key 'kitti'"),
])
def test_benchmark_index_errors(tmp_path, doc, need_pose, cause):
    path = tmp_path / "b.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    with pytest.raises(BenchmarkError, match=f"{path}: .*{cause}".replace("(", r"\(").replace(")", r"\)")):
        read_benchmark_index(path, ["kitti"], need_pose=need_pose)
    with pytest.raises(BenchmarkError, match="nope.json: benchmark index not found"):
        read_benchmark_index(tmp_path / "nope.json")


def test_atomic_file_keeps_old_content_on_error_and_sets_mode(tmp_path):
    target = tmp_path / "sub" / "r.json"
    write_json_atomic(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"a": 1}
    assert sorted(p.name for p in target.parent.iterdir()) == ["r.json"]  # the temporary is gone


def test_atomic_folder_replaces_whole_folder_or_nothing(tmp_path):
    out = tmp_path / "frames"
    with AtomicWrite(out, folder=True) as folder:
        (folder.tmp / "0.png").write_bytes(b"old")
        assert not out.exists()  # nothing under the final name while writing
    assert [p.name for p in out.iterdir()] == ["0.png"]
    failed = AtomicWrite(out, folder=True)
    (failed.tmp / "1.png").write_bytes(b"partial")
    failed.abort()
    assert [p.name for p in out.iterdir()] == ["0.png"]
    with AtomicWrite(out, folder=True) as folder:
        (folder.tmp / "new.png").write_bytes(b"new")
    assert [p.name for p in out.iterdir()] == ["new.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["frames"]  # no staging or old copies left


def test_rank_world_prefers_the_process_group(monkeypatch):
    import torch.distributed as dist

    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "8")
    assert rank_world() == (0, 1)                       # no group: nobody to talk to
    assert rank_world(from_environment=True) == (3, 8)  # data set-up before the group exists
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        assert rank_world(from_environment=True) == (0, 1)
    finally:
        dist.destroy_process_group()
