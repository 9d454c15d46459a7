"""`vda-shard <dataset> ROOT`: each converter on a replica of the dataset's raw layout (tests/fakes/raw_datasets.py)
gives back, through the DataModule, the truth it was rendered from: metric z-depth where valid, invalid sky,
K of the stored frames, relative camera poses, and a consistent reprojection; plus resume, parallel writers,
the unit check and the --help layouts."""
from __future__ import annotations

import json
import os
import tarfile

import cv2
import numpy as np
import pytest

from vda_lightning.data import convert
from vda_lightning.data.cli import main as vda_shard
from vda_lightning.data.converters import CONVERTERS
from vda_lightning.data.datamodule import ValConfig, VideoDepthDataModule
from vda_lightning.data.format import decode_members
from vda_lightning.data.shards import expand_shards

from tests.fakes.raw_datasets import T_FRAMES, WRITERS

EXTRA_ARGS = {"pointodyssey": ["--drop-no-background"]}
MEASURED: dict[str, dict] = {}   # worst errors per dataset, printed at the end (pytest -s) for the report


@pytest.fixture(scope="session")
def raw(tmp_path_factory):
    base = tmp_path_factory.mktemp("raw")
    return {name: (str(base / name), write(str(base / name))) for name, write in WRITERS.items()}


def convert_dataset(name, root, out, *extra):
    args = [name, root, "--out", str(out), "--clip-len", "0", "--depth-encoding", "f32", "--no-progress",
            *EXTRA_ARGS.get(name, []), *extra]
    assert vda_shard(args) == 0
    return out


def read_back(out):
    """{sequence: (batch dicts from the DataModule in frame order, decoded records)}."""
    dm = VideoDepthDataModule(val_shards=str(out), val=ValConfig(size=0, clip_len=0, num_workers=0))
    dm.setup("validate")
    got: dict[str, list] = {}
    for b in dm.val_dataloader():
        got.setdefault(b["sequence"][0], []).append(b)
    recs: dict[str, list] = {}
    for url in expand_shards(str(out)):
        with tarfile.open(url) as tar:
            members: dict[str, dict] = {}
            for m in tar.getmembers():
                key, ext = m.name.split(".", 1)
                members.setdefault(key, {"__key__": key})[ext] = tar.extractfile(m).read()
        for raw in members.values():
            rec = decode_members(raw)
            recs.setdefault(rec.sequence, []).append(rec)
    return got, recs


def stack(batches, recs):
    batches = sorted(batches, key=lambda b: int(b["frame_indices"][0][0]))
    recs = sorted(recs, key=lambda r: r.frame_indices[0])
    idx = np.concatenate([b["frame_indices"][0].numpy() for b in batches])
    depth = np.concatenate([b["depth"][0].numpy() for b in batches])
    mask = np.concatenate([b["mask"][0].numpy() for b in batches])
    K = np.stack([b["K"][0].numpy().astype(np.float64) for b in batches for _ in range(b["depth"].shape[1])])
    poses = None if recs[0].poses is None else np.concatenate([r.poses for r in recs])
    frames = np.concatenate([(b["frames"][0] * 255).round().byte().permute(0, 2, 3, 1).numpy() for b in batches])
    return idx, depth, mask, K, poses, frames


def relative(P):
    return np.stack([np.linalg.inv(P[0]) @ P[k] for k in range(len(P))])


def reprojection_agreement(depth, K, poses, k):
    """Warp frame 0's valid pixels into frame k with K and the poses and compare the warped z with frame k's depth
    there: inverse depth interpolated bilinearly (exact on planes, where 1/z is affine in pixel coordinates), only
    where the four neighbours are valid and agree within 5 % (no depth edge). Returns (fraction of compared
    pixels within 1 %, median relative error). All replicas are static scenes."""
    H, W = depth.shape[1:]
    v, u = np.nonzero(depth[0] > 0)
    z = depth[0][v, u].astype(np.float64)
    X = np.linalg.inv(K[0]) @ np.stack([u * z, v * z, z])
    Xw = poses[0][:3, :3] @ X + poses[0][:3, 3:4]
    w2c = np.linalg.inv(poses[k])
    Xk = w2c[:3, :3] @ Xw + w2c[:3, 3:4]
    p = K[k] @ Xk
    x, y = p[0] / p[2], p[1] / p[2]
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    ok = (p[2] > 0) & (x0 >= 0) & (x0 < W - 1) & (y0 >= 0) & (y0 < H - 1)
    x, y, x0, y0, zk = x[ok], y[ok], x0[ok], y0[ok], Xk[2][ok]
    nb = np.stack([depth[k][y0, x0], depth[k][y0, x0 + 1], depth[k][y0 + 1, x0], depth[k][y0 + 1, x0 + 1]])
    smooth = (nb > 0).all(0) & (nb.max(0) <= 1.05 * nb.min(0))
    inv = 1.0 / np.where(nb > 0, nb, 1.0)
    fx, fy = x - x0, y - y0
    w = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy])
    zi = 1.0 / (w * inv).sum(0)
    rel = np.abs(zk - zi)[smooth] / zi[smooth]
    assert rel.size > 0.1 * (depth[0] > 0).sum(), f"only {rel.size} pixels to compare"
    return float((rel < 0.01).mean()), float(np.median(rel))


@pytest.mark.parametrize("name", list(WRITERS))
def test_converter_gives_back_the_rendered_truth(raw, tmp_path, name, capsys):
    root, truths = raw[name]
    convert_dataset(name, root, tmp_path / "shards")
    report = capsys.readouterr().err
    got, recs = read_back(tmp_path / "shards")
    truths = {k: t for k, t in truths.items() if not t.no_background}     # dropped by --drop-no-background
    assert sorted(got) == sorted(truths), f"{name}: sequences {sorted(got)} != {sorted(truths)}"
    worst = {"depth_rel": 0.0, "K_rel": 0.0, "pose_abs": 0.0, "reproj_within_1pct": 1.0}
    for seq, truth in truths.items():
        assert f"{seq}: metric_depth" in report or name == "irs"   # one report line per sequence
        idx, depth, mask, K, poses, frames = stack(got[seq], recs[seq])
        np.testing.assert_array_equal(idx, np.arange(T_FRAMES))
        valid = truth.depth > 0
        assert (~valid).any(), f"{name}/{seq}: the replica has no invalid (sky) pixel to test"
        np.testing.assert_array_equal(mask, valid)                      # sky / invalid -> invalid, nothing else
        assert np.all(depth[~valid] == 0)
        rel = np.abs(depth[valid] - truth.depth[valid]) / truth.depth[valid]
        assert rel.max() <= 1e-4, f"{name}/{seq}: depth error {rel.max():.2e}"
        Krel = np.abs(K - truth.K).max() / np.abs(truth.K).max()
        assert Krel <= 1e-6, f"{name}/{seq}: K {K[0]} != {truth.K[0]}"
        if not truth.lossy_frames:
            np.testing.assert_array_equal(frames, truth.frames)
        worst["depth_rel"], worst["K_rel"] = max(worst["depth_rel"], rel.max()), max(worst["K_rel"], Krel)
        if name == "irs":                                              # IRS has no poses
            assert poses is None
            continue
        perr = np.abs(relative(poses) - relative(truth.c2w)).max()
        assert perr <= 1e-5, f"{name}/{seq}: relative poses differ by {perr:.2e}"
        worst["pose_abs"] = max(worst["pose_abs"], perr)
        for k in range(1, T_FRAMES):
            frac, med = reprojection_agreement(depth, K, poses, k)
            assert frac >= 0.75 and med <= 3e-3, f"{name}/{seq}: frame 0 -> {k}: {frac:.2f} within 1%, median {med}"
            worst["reproj_within_1pct"] = min(worst["reproj_within_1pct"], frac)
    MEASURED[name] = worst
    print(f"\nMEASURED {name}: {json.dumps({k: float(f'{v:.3g}') for k, v in worst.items()})}")


def test_pointodyssey_without_background_is_dropped_only_when_asked(raw, tmp_path, capsys):
    root, _ = raw["pointodyssey"]
    convert_dataset("pointodyssey", root, tmp_path / "all", "--allow-depth-range")
    # without the filter both sequences are written (the second one mostly invalid)
    assert vda_shard(["pointodyssey", root, "--out", str(tmp_path / "kept"), "--clip-len", "0",
                      "--no-progress"]) == 0
    out = capsys.readouterr()
    assert "train/cnb_nobg" in out.err and json.loads(out.out.splitlines()[-1])["sequences"] == 2
    assert json.loads(out.out.splitlines()[-1])["depth"]["pointodyssey"]["valid_fraction"] < 0.8


def test_vkitti2_png16_default_encoding_and_resize_keep_K_and_depth(raw, tmp_path):
    """The default png16 encoding and --short-side: K follows the resize, depth the nearest-neighbour samples."""
    root, truths = raw["vkitti2"]
    assert vda_shard(["vkitti2", root, "--out", str(tmp_path / "s"), "--clip-len", "0", "--short-side", "24",
                      "--cameras", "0", "--no-progress"]) == 0
    got, recs = read_back(tmp_path / "s")
    truth = truths["Scene01/clone/Camera_0"]
    idx, depth, mask, K, poses, _ = stack(got["Scene01/clone/Camera_0"], recs["Scene01/clone/Camera_0"])
    s = 24 / 30
    K0 = truth.K[0]
    want = np.array([[K0[0, 0] * s, 0, (K0[0, 2] + 0.5) * s - 0.5], [0, K0[1, 1] * s, (K0[1, 2] + 0.5) * s - 0.5],
                     [0, 0, 1]])
    np.testing.assert_allclose(K[0], want, rtol=1e-6)
    near = np.stack([cv2.resize(d, (32, 24), interpolation=cv2.INTER_NEAREST) for d in truth.depth])
    v = near > 0
    np.testing.assert_array_equal(mask, v)
    step = 0.5 * near.max() / 65535 + 2 * np.spacing(np.float32(near.max()))   # png16: half a quantisation step
    assert np.abs(depth[v] - near[v]).max() <= step
    assert reprojection_agreement(depth, K, poses, 1)[0] >= 0.75


def test_rerun_after_a_crash_rewrites_only_missing_shards_byte_identically(raw, tmp_path, monkeypatch):
    root, _ = raw["vkitti2"]
    args = ["--clip-len", "2", "--stride", "1", "--max-samples-per-shard", "1", "--no-progress"]
    assert vda_shard(["vkitti2", root, "--out", str(tmp_path / "ref"), *args]) == 0
    ref = {p: open(p, "rb").read() for p in sorted(expand_shards(str(tmp_path / "ref")))}
    assert len(ref) == 6                                   # 2 cameras x 3 two-frame clips

    real, calls = convert.load_job, []

    def dying_load_job(*a, **kw):                          # the process "dies" while writing the 4th shard
        calls.append(1)
        if len(calls) == 5:                                # call 1 sizes the shards, calls 2-4 write shards 0-2
            raise RuntimeError("killed")
        return real(*a, **kw)

    monkeypatch.setattr(convert, "load_job", dying_load_job)
    with pytest.raises(RuntimeError, match="killed"):
        vda_shard(["vkitti2", root, "--out", str(tmp_path / "run"), *args])
    monkeypatch.setattr(convert, "load_job", real)
    done = sorted(p for p in os.listdir(tmp_path / "run") if p.endswith(".index.json"))
    assert len(done) == 3 and not any(".tmp" in p for p in os.listdir(tmp_path / "run"))
    before = {p: os.stat(tmp_path / "run" / p).st_mtime_ns for p in os.listdir(tmp_path / "run")}
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        assert vda_shard(["vkitti2", root, "--out", str(tmp_path / "run"), *args]) == 0
    summary = json.loads(buf.getvalue().splitlines()[-1])
    assert (summary["written"], summary["skipped_complete"]) == (3, 3)
    for p in before:                                       # complete shards were not touched
        assert os.stat(tmp_path / "run" / p).st_mtime_ns == before[p]
    for p, data in ref.items():
        assert open(tmp_path / "run" / os.path.basename(p), "rb").read() == data


def test_two_workers_write_the_same_shards_as_one(raw, tmp_path):
    root, _ = raw["tartanair"]
    args = ["--clip-len", "2", "--stride", "1", "--max-samples-per-shard", "1", "--no-progress"]
    assert vda_shard(["tartanair", root, "--out", str(tmp_path / "w1"), "--workers", "1", *args]) == 0
    assert vda_shard(["tartanair", root, "--out", str(tmp_path / "w2"), "--workers", "2", *args]) == 0
    one, two = sorted(os.listdir(tmp_path / "w1")), sorted(os.listdir(tmp_path / "w2"))
    assert one == two and len(one) == 6
    for p in one:
        assert open(tmp_path / "w1" / p, "rb").read() == open(tmp_path / "w2" / p, "rb").read(), p


def test_millimetres_read_as_metres_are_refused_in_one_line(tmp_path, capsys):
    d = tmp_path / "src" / "walk"
    (d / "frames").mkdir(parents=True)
    (d / "depth").mkdir()
    rng = np.random.default_rng(0)
    for t in range(3):
        cv2.imwrite(str(d / "frames" / f"{t:04d}.png"), rng.integers(0, 255, (12, 16, 3), dtype=np.uint8))
        cv2.imwrite(str(d / "depth" / f"{t:04d}.png"), rng.integers(500, 9000, (12, 16)).astype(np.uint16))  # mm
    args = ["folders", str(tmp_path / "src"), "--dataset", "mine", "--out", str(tmp_path / "o"), "--clip-len", "0",
            "--no-progress"]
    assert vda_shard(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "mine/walk" in err and "median depth" in err and "--factor" in err and "--allow-depth-range" in err
    assert not os.path.exists(tmp_path / "o")              # refused before anything was written
    assert vda_shard(args + ["--factor", "1000"]) == 0
    assert "mine/walk: metric_depth 0.5" in capsys.readouterr().err
    assert vda_shard(args + ["--out", str(tmp_path / "o2"), "--allow-depth-range"]) == 0


def test_converter_with_a_wrong_scale_is_refused_naming_its_flag(raw, tmp_path, capsys):
    root, _ = raw["pointodyssey"]
    assert vda_shard(["pointodyssey", root, "--out", str(tmp_path / "o"), "--full-scale", "1e7", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pointodyssey/train/ani_dancing" in err[0] and "--full-scale" in err[0]


def test_inspect_prints_depth_range_and_valid_fraction_per_dataset(raw, tmp_path, capsys):
    root, truths = raw["spring"]
    convert_dataset("spring", root, tmp_path / "s")
    capsys.readouterr()
    assert vda_shard(["inspect", str(tmp_path / "s"), "--json"]) == 0
    out = capsys.readouterr()
    summary = json.loads(out.out.splitlines()[-1])
    truth = truths["train/0001/left"].depth
    got = summary["depth"]["spring"]
    assert got["valid_fraction"] == pytest.approx((truth > 0).mean(), abs=1e-6)
    assert got["min"] == pytest.approx(truth[truth > 0].min(), rel=1e-6)
    assert got["max"] == pytest.approx(truth.max(), rel=1e-6)
    assert got["median"] == pytest.approx(np.median(truth[truth > 0]), rel=0.04)   # 1/32-decade histogram
    assert summary["geometry"]["spring"] == {"samples": 1, "with_K": 1, "with_poses": 1}
    assert "spring: metric_depth" in out.err


def test_irs_as_disparity_stores_the_disparity(raw, tmp_path):
    root, truths = raw["irs"]
    convert_dataset("irs", root, tmp_path / "d", "--as", "disparity")
    got, _ = read_back(tmp_path / "d")
    (b,) = got["Home/ArchVizInterior03Data"]
    assert b["depth_kind"] == ["relative_disparity"]
    truth = truths["Home/ArchVizInterior03Data"].depth
    disp = np.where(truth > 0, 48 * 0.1 / np.where(truth > 0, truth, 1), 0)
    np.testing.assert_allclose(b["disparity"][0].numpy(), disp, rtol=1e-5)


@pytest.mark.parametrize("name", list(CONVERTERS))
def test_help_describes_the_layout_in_two_or_three_lines(name, capsys):
    with pytest.raises(SystemExit) as e:
        vda_shard([name, "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    layout = CONVERTERS[name].layout
    assert 2 <= len(layout.splitlines()) <= 3 and layout.splitlines()[0] in text and "ROOT/" in layout
    assert f"shards/{name}" in "".join(text.split())        # the default output folder the paper configs use


def test_missing_files_are_one_clear_error(raw, tmp_path, capsys):
    root, _ = raw["spring"]
    broken = tmp_path / "spring"
    import shutil

    shutil.copytree(root, broken)
    os.remove(broken / "train" / "0001" / "disp1_left" / "disp1_left_0003.dsp5")
    assert vda_shard(["spring", str(broken), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "disp1_left_0003.dsp5" in err and len(err.strip().splitlines()) == 1
