"""vda-prepare-benchmark on small generated replicas of each raw layout: files, JSONs, colour order, depth."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from vda_lightning.evaluation.cli import main as eval_main
from vda_lightning.evaluation.prepare import SINTEL_FACTOR, main
from vda_lightning.io.depth import DPT_TAG as SINTEL_TAG

RNG = np.random.default_rng(7)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _rgb(path, h, w, reddish=False):
    """Write a true-colour image (PIL, RGB) and return its pixels."""
    arr = RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if reddish:  # JPEG blurs noise; a strongly red image still shows an R/B swap plainly
        arr[..., 0] = RNG.integers(200, 256, (h, w))
        arr[..., 2] //= 5
    arr[0, 0] = (255, 0, 0)  # pure red: a swapped file would read back blue
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, quality=100) if path.suffix == ".jpg" else Image.fromarray(arr).save(path)
    return np.array(Image.open(path))


def _depth(path, h, w, scale):
    raw = (RNG.uniform(0.5, 5.0, (h, w)) * scale).astype(np.uint16)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), raw)
    return raw


def _index(root, dataset, name):
    return json.loads((root / dataset / name).read_text())[dataset]


def test_kitti(tmp_path):
    raw, ann, out = tmp_path / "raw", tmp_path / "val", tmp_path / "out"
    drive = "2011_09_26_drive_0002_sync"
    rgbs = {}
    for i in range(5):
        name = f"{i:010d}.png"
        rgbs[i] = _rgb(raw / drive[:10] / drive / "image_02/data" / name, 11, 15)
        _depth(ann / drive / "proj_depth/groundtruth/image_02" / name, 11, 15, 256)
    assert main(["kitti", "--raw", str(raw), "--depth", str(ann), "--out", str(out)]) == 0
    seqs = _index(out, "kitti", "kitti_video.json")
    assert list(seqs[0]) == [drive] and len(seqs[0][drive]) == 5
    entry = seqs[0][drive][3]
    assert entry == {"image": f"{drive}/rgb/0000000003.png", "gt_depth": f"{drive}/depth/0000000003.png",
                     "factor": 256.0}
    stored = np.array(Image.open(out / "kitti" / entry["image"]))
    np.testing.assert_array_equal(stored, rgbs[3][:10, :14])  # even crop, true colour
    assert (out / "kitti/kitti_video_500.json").is_file()


def test_bonn_frame_range_and_pairing(tmp_path):
    raw, out = tmp_path / "bonn_raw", tmp_path / "out"
    n = 34  # the short JSON keeps frames 30..139 → 4 here
    for i in range(n):
        _rgb(raw / "rgbd_bonn_balloon" / "rgb" / f"{1548266469 + i}.{i:05d}.png", 9, 13)
        _depth(raw / "rgbd_bonn_balloon" / "depth" / f"{1548266469 + i}.{i + 7:05d}.png", 9, 13, 5000)
    assert main(["bonn", "--raw", str(raw), "--out", str(out)]) == 0
    short = _index(out, "bonn", "bonn_video.json")[0]["rgbd_bonn_balloon"]
    assert len(short) == 4 and short[0]["image"].endswith(f"{1548266469 + 30}.00030.png")
    assert short[0]["gt_depth"].endswith(f"{1548266469 + 30}.00037.png") and short[0]["factor"] == 5000.0
    assert len(_index(out, "bonn", "bonn_video_500.json")[0]["rgbd_bonn_balloon"]) == n
    assert Image.open(out / "bonn" / short[0]["image"]).size == (12, 8)


def test_scannet_with_tae_index_and_evaluation(tmp_path):
    raw, out = tmp_path / "scannet_raw", tmp_path / "out"
    K = np.array([[30.0, 0, 14.5, 0], [0, 30.0, 11.5, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    originals = {}
    for scene in ("scene0001_00", "scene0000_00"):
        seq = raw / scene
        for i in range(14):
            originals[(scene, i)] = _rgb(seq / "color" / f"{i}.jpg", 24, 30, reddish=True)
            _depth(seq / "depth" / f"{i}.png", 24, 30, 1000)
            pose = np.eye(4)
            pose[0, 3] = 0.01 * i
            (seq / "pose").mkdir(exist_ok=True)
            np.savetxt(seq / "pose" / f"{i}.txt", pose)
        (seq / "intrinsic").mkdir()
        np.savetxt(seq / "intrinsic/intrinsic_depth.txt", K)
    assert main(["scannet", "--raw", str(raw), "--out", str(out), "--max-scenes", "2", "--max-frames", "12"]) == 0
    short = _index(out, "scannet", "scannet_video.json")
    assert [list(s)[0] for s in short] == ["scene0000_00", "scene0001_00"]  # sorted
    frames = short[0]["scene0000_00"]
    assert [f["image"] for f in frames] == [f"scene0000_00/color/{i}.jpg" for i in (0, 3, 6, 9)]  # step 3, 12 kept
    assert np.allclose(frames[1]["K"], K) and frames[1]["pose"][0][3] == pytest.approx(0.03)
    cropped = np.array(Image.open(out / "scannet" / frames[1]["image"])).astype(int)
    assert cropped.shape == (8, 8, 3)
    original = originals[("scene0000_00", 3)][8:-8, 11:-11].astype(int)
    assert cropped[..., 0].mean() > 180 and cropped[..., 2].mean() < 60  # red stays red (no R/B swap)
    assert np.abs(cropped.mean((0, 1)) - original.mean((0, 1))).max() < 6  # only JPEG loss
    tae = _index(out, "scannet", "scannet_video_tae.json")[0]["scene0000_00"]
    assert len(tae) == 12 and tae[0]["image"] == "scene0000_00/color_origin/0.jpg" and "pose" in tae[0]
    # The prepared layout evaluates: GT-derived disparity as prediction → AbsRel ≈ 0, δ1 = 1, and TAE runs.
    # Predictions have the stored image's size: cropped `color/` for accuracy, full `color_origin/` for TAE.
    pred_root = tmp_path / "pred"
    for name, crop in (("scannet_video.json", (slice(8, -8), slice(11, -11))), ("scannet_video_tae.json", ())):
        for seq in _index(out, "scannet", name):
            for f in list(seq.values())[0]:
                gt = cv2.imread(str(out / "scannet" / f["gt_depth"]), -1)[crop] / 1000.0
                path = pred_root / "scannet" / f["image"].replace(".jpg", ".npy")
                path.parent.mkdir(parents=True, exist_ok=True)
                np.save(path, (2.0 / gt + 0.5).astype(np.float32))
    result = tmp_path / "r.json"
    assert eval_main(["--predictions", str(pred_root), "--benchmark-root", str(out), "--benchmark", "scannet",
                      "--tae", "--output", str(result), "--no-progress"]) == 0
    res = json.loads(result.read_text())
    assert res["depth"]["scannet"]["abs_relative_difference"] < 1e-5
    assert res["depth"]["scannet"]["delta1_acc"] == 1.0
    assert res["tae"]["scannet"]["settings"]["json"] == "scannet_video_tae.json"
    assert res["tae"]["scannet"]["sequences"] == 2


def test_nyuv2_crop_and_both_indices(tmp_path):
    raw, out = tmp_path / "nyu_raw", tmp_path / "out"
    for i in range(2):
        _rgb(raw / "kitchen_0003" / "rgb" / f"{i}.jpg", 480, 640)
        _depth(raw / "kitchen_0003" / "depth" / f"{i}.png", 480, 640, 6000)
    assert main(["nyuv2", "--raw", str(raw), "--out", str(out)]) == 0
    for name in ("nyuv2_video.json", "nyuv2_video_500.json"):
        frames = _index(out, "nyuv2", name)[0]["kitchen_0003"]
        assert [f["gt_depth"] for f in frames] == ["kitchen_0003/depth/0.png", "kitchen_0003/depth/1.png"]
        assert frames[0]["factor"] == 6000.0
    assert Image.open(out / "nyuv2/kitchen_0003/rgb/0.jpg").size == (560, 426)
    depth = cv2.imread(str(out / "nyuv2/kitchen_0003/depth/1.png"), -1)
    assert depth.dtype == np.uint16 and depth.shape == (480, 640)


def _write_dpt(path, depth):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.array([SINTEL_TAG], np.float32).tofile(f)
        np.array([depth.shape[1], depth.shape[0]], np.int32).tofile(f)
        depth.astype(np.float32).tofile(f)


def _write_cam(path, K, world_to_cam):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.array([SINTEL_TAG], np.float32).tofile(f)
        K.astype(np.float64).tofile(f)
        world_to_cam[:3].astype(np.float64).tofile(f)


def test_sintel_dpt_and_cam(tmp_path):
    raw, out = tmp_path / "training", tmp_path / "out"
    depth = RNG.uniform(1.0, 80.0, (6, 8)).astype(np.float32)
    depth[0, 0] = 1000.0  # beyond 650 m: clipped
    K = np.array([[50.0, 0, 4], [0, 50.0, 3], [0, 0, 1]])
    w2c = np.eye(4)
    w2c[:3, 3] = [1.0, 2.0, 3.0]
    for i in (1, 2):
        _rgb(raw / "clean/alley_1" / f"frame_{i:04d}.png", 6, 8)
        _write_dpt(raw / "depth/alley_1" / f"frame_{i:04d}.dpt", depth)
        _write_cam(raw / "camdata_left/alley_1" / f"frame_{i:04d}.cam", K, w2c)
    assert main(["sintel", "--raw", str(raw), "--out", str(out)]) == 0
    frames = _index(out, "sintel", "sintel_video.json")[0]["alley_1"]
    assert frames[0]["image"] == "alley_1/clean/frame_0001.png" and frames[0]["factor"] == SINTEL_FACTOR
    assert np.allclose(frames[0]["K"], K) and np.allclose(frames[0]["pose"], np.linalg.inv(w2c))
    stored = cv2.imread(str(out / "sintel" / frames[1]["gt_depth"]), -1)
    assert stored[0, 0] == 65535
    np.testing.assert_allclose(stored[1:] / SINTEL_FACTOR, depth[1:], atol=0.5 / SINTEL_FACTOR + 1e-6)


def test_missing_raw_folder_is_named(tmp_path, capsys):
    assert main(["bonn", "--raw", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    assert str(tmp_path / "nowhere") in capsys.readouterr().err


# -- the trust boundary (issue 24): names, raw files and cameras from the dataset ---------------------------------

def _prepare_cli(*args) -> subprocess.CompletedProcess:
    """`vda prepare-benchmark ARGS` in a child: a crash in a native decoder would be a signal here, not pytest's."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run(["timeout", "-s", "KILL", "120", sys.executable, "-m", "vda_lightning", "prepare-benchmark",
                           *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True)


def _one_error(proc, *names) -> str:
    lines = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert all(name in lines[0] for name in names), lines
    return lines[0]


def test_a_frame_name_that_is_not_utf8_is_one_line_and_nothing_is_written(tmp_path):
    raw, out = tmp_path / "bonn_raw", tmp_path / "out"
    for i in range(2):
        _rgb(raw / "seq" / "rgb" / f"{i:05d}.png", 9, 13)
        _depth(raw / "seq" / "depth" / f"{i:05d}.png", 9, 13, 5000)
    bad = raw / "seq" / "rgb" / os.fsdecode(b"00001\xff.png")  # OpenCV segfaults on such a name
    os.rename(raw / "seq" / "rgb" / "00001.png", bad)
    line = _one_error(_prepare_cli("bonn", "--raw", raw, "--out", out), "00001\\xff.png", "not valid UTF-8")
    assert "rename it" in line and not (out.exists() and any(p.is_file() for p in out.rglob("*")))


def test_sintel_cameras_are_checked_before_they_are_written(tmp_path, capsys):
    K = np.array([[50.0, 0, 4], [0, 50.0, 3], [0, 0, 1]])
    c, s = np.cos(0.3), np.sin(0.3)
    rot = np.array([[c, 0, s, 1], [0, 1, 0, 2], [-s, 0, c, 3], [0, 0, 0, 1]])
    stretched = rot.copy()
    stretched[:3, :3] *= 5  # det 125, the vkitti2 attack of issue 24 on a Sintel camera
    zero_fx = K.copy()
    zero_fx[0, 0] = 0
    cases = [("truncated", K, rot, 100, "not a Sintel .cam file (100 bytes, expected 172"),
             ("x5", K, stretched, None, "pose is not a rigid camera transform (rotation det 125"),
             ("fx0", zero_fx, rot, None, "K's focal lengths must be positive, got fx 0")]
    for name, k, w2c, cut, says in cases:
        raw, out = tmp_path / name / "training", tmp_path / name / "out"
        _rgb(raw / "clean/alley_1/frame_0001.png", 6, 8)
        _write_dpt(raw / "depth/alley_1/frame_0001.dpt", np.full((6, 8), 5.0, np.float32))
        cam = raw / "camdata_left/alley_1/frame_0001.cam"
        _write_cam(cam, k, w2c)
        if cut:
            cam.write_bytes(cam.read_bytes()[:cut])
        code = main(["sintel", "--raw", str(raw), "--out", str(out)])
        _one_error(subprocess.CompletedProcess([], code, "", capsys.readouterr().err), str(cam), says)
        assert not (out / "sintel" / "sintel_video.json").exists()


@pytest.fixture
def scannet_raw(tmp_path):
    raw = tmp_path / "scannet_raw"
    K = np.array([[30.0, 0, 14.5, 0], [0, 30.0, 11.5, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    seq = raw / "scene0000_00"
    for i in range(6):
        _rgb(seq / "color" / f"{i}.jpg", 24, 30)
        _depth(seq / "depth" / f"{i}.png", 24, 30, 1000)
        pose = np.eye(4)
        pose[0, 3] = 0.01 * i
        (seq / "pose").mkdir(exist_ok=True)
        np.savetxt(seq / "pose" / f"{i}.txt", pose)
    (seq / "intrinsic").mkdir()
    np.savetxt(seq / "intrinsic/intrinsic_depth.txt", K)
    return raw


def test_scannet_text_files_that_are_not_matrices_are_one_line(scannet_raw, tmp_path, capsys):
    pose = scannet_raw / "scene0000_00" / "pose" / "3.txt"
    for content, says in (("1 2 abc\n", "pose is not a table of numbers"), ("1 2 3\n4 5 6\n", "pose is 2x3"),
                          ("2 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n", "pose is not a rigid camera transform")):
        pose.write_text(content)
        assert main(["scannet", "--raw", str(scannet_raw), "--out", str(tmp_path / "out")]) == 2
        lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
        assert len(lines) == 1 and str(pose) in lines[0] and says in lines[0], lines


def test_scannet_untracked_poses_are_null_and_a_fifo_is_refused_not_waited_on(scannet_raw, tmp_path, capsys):
    (scannet_raw / "scene0000_00" / "pose" / "2.txt").write_text("-inf -inf -inf -inf\n" * 4)  # ScanNet's mark
    out = tmp_path / "out"
    assert main(["scannet", "--raw", str(scannet_raw), "--out", str(out)]) == 0
    assert "1 frame(s) without a tracked pose" in capsys.readouterr().err
    frames = _index(out, "scannet", "scannet_video_500.json")[0]["scene0000_00"]
    assert frames[2]["pose"] is None and frames[3]["pose"][0][3] == pytest.approx(0.03)
    depth = scannet_raw / "scene0000_00" / "depth" / "4.png"
    depth.unlink()
    os.mkfifo(depth)
    proc = _prepare_cli("scannet", "--raw", scannet_raw, "--out", tmp_path / "out2")
    _one_error(proc, str(depth), "is a FIFO, not a regular file")
