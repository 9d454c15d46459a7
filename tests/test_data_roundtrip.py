"""vda-shard -> DataModule round trip, the other converter inputs, resumability, and start-up errors."""
from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest
import torch

from vda_lightning.data.cli import main as vda_shard
from vda_lightning.data.datamodule import ValConfig, VideoDepthDataModule
from vda_lightning.data.transforms import AugmentConfig
from vda_lightning.io import write_dpt

T, H, W = 6, 28, 42  # multiples of 14, so the training path can run without any resize


def write_sequence(root, name, seed):
    """A folder-layout sequence with known frames, float depth (npy), mask, K and poses."""
    rng = np.random.default_rng(seed)
    d = root / name
    for sub in ("frames", "depth", "mask"):
        (d / sub).mkdir(parents=True)
    frames = rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8)
    depth = rng.uniform(0.5, 30.0, (T, H, W)).astype(np.float32)
    mask = rng.random((T, H, W)) > 0.1
    K = np.array([[50.0, 0, 20.5], [0, 51.0, 13.5], [0, 0, 1]])
    poses = np.stack([np.eye(4)] * T)
    poses[:, :3, 3] = rng.normal(size=(T, 3))
    for t in range(T):
        cv2.imwrite(str(d / "frames" / f"{t:04d}.png"), frames[t, :, :, ::-1])
        np.save(d / "depth" / f"{t:04d}.npy", depth[t])
        cv2.imwrite(str(d / "mask" / f"{t:04d}.png"), mask[t].astype(np.uint8) * 255)
    np.savetxt(d / "K.txt", K)
    np.savetxt(d / "poses.txt", poses.reshape(T, 16))
    return dict(frames=frames, depth=depth, mask=mask, K=K, poses=poses)


def check_batch(b, truth, atol_depth):
    assert b["frames"].dtype == torch.float32 and b["frames"].shape == (1, T, 3, H, W)
    np.testing.assert_array_equal((b["frames"][0] * 255).round().byte().permute(0, 2, 3, 1).numpy(), truth["frames"])
    np.testing.assert_array_equal(b["mask"][0].numpy(), truth["mask"])
    m = truth["mask"]
    assert np.abs(b["depth"][0].numpy()[m] - truth["depth"][m]).max() <= atol_depth
    assert np.all(b["depth"][0].numpy()[~m] == 0) and np.all(b["disparity"][0].numpy()[~m] == 0)
    np.testing.assert_allclose(b["disparity"][0].numpy()[m], 1 / b["depth"][0].numpy()[m], rtol=1e-6)
    np.testing.assert_allclose(b["K"][0].numpy(), truth["K"], rtol=1e-6)
    np.testing.assert_allclose(b["poses"][0].numpy(), truth["poses"], rtol=1e-6, atol=1e-6)
    assert bool(b["has_pose"][0]) and b["depth_kind"] == ["metric_depth"]


def precision(depth, encoding):
    """png16: half a quantisation step of the per-clip scale (65535 / max depth), plus float32 rounding."""
    if encoding != "png16":
        return 0.0
    top = np.float32(depth.max())
    return 0.5 * top / 65535 + 2 * np.spacing(top)


@pytest.mark.parametrize("encoding", ["png16", "f32"])
def test_vda_shard_then_datamodule_gives_back_what_went_in(tmp_path, encoding):
    truth = {n: write_sequence(tmp_path / "src", n, i) for i, n in enumerate(["walk", "run"])}
    out = tmp_path / "shards"
    assert vda_shard(["folders", str(tmp_path / "src"), "--dataset", "toy", "--out", str(out), "--clip-len", "0",
                      "--depth-encoding", encoding, "--max-samples-per-shard", "1", "--no-progress"]) == 0
    dm = VideoDepthDataModule(val_shards=str(out / "train-{000000..000001}.tar"),
                              val=ValConfig(size=0, clip_len=0, num_workers=0), clip_len=T, crop_size=[H, W])
    dm.setup("validate")
    batches = list(dm.val_dataloader())
    assert sorted(b["sequence"][0] for b in batches) == ["run", "walk"]
    for b in batches:
        t = truth[b["sequence"][0]]
        check_batch(b, t, precision(t["depth"], encoding))
    # the training path with augmentation switched off gives the same clip
    dm = VideoDepthDataModule(train_shards=str(out / "train-000000.tar"), clip_len=T, crop_size=[H, W],
                              augment=AugmentConfig(scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=0.0, brightness=0.0,
                                                    contrast=0.0, saturation=0.0, hue=0.0),
                              num_workers=0, epoch_length=1, shuffle_buffer=1)
    dm.setup("fit")
    (step,) = list(dm.train_dataloader())
    assert step["image"] is None
    t = truth[step["video"]["sequence"][0]]
    check_batch(step["video"], t, precision(t["depth"], encoding))


def test_clip_sampling_resize_resume_and_parallel(tmp_path):
    write_sequence(tmp_path / "src", "a", 0)
    args = ["folders", str(tmp_path / "src"), "--clip-len", "3", "--stride", "2", "--frame-step", "1",
            "--short-side", "14", "--no-progress", "--max-samples-per-shard", "1"]
    assert vda_shard(args + ["--out", str(tmp_path / "o1")]) == 0  # starts 0, 2 (4 would need frame 6)
    idx = [json.load(open(tmp_path / "o1" / f"train-{i:06d}.index.json")) for i in range(2)]
    assert [i["keys"] for i in idx] == [["src__a__000000"], ["src__a__000002"]]
    from vda_lightning.data.format import decode_members
    from vda_lightning.data.streams import SkipCounters, iter_tar_samples

    (raw,) = list(iter_tar_samples(str(tmp_path / "o1" / "train-000001.tar"), SkipCounters(1)))
    rec = decode_members(raw)
    assert rec.frames.shape == (3, 14, 21, 3) and rec.frame_indices == [2, 3, 4]
    s = 14 / 28  # K follows the resize (pixel centres at integer coordinates)
    np.testing.assert_allclose(rec.K, [[50 * s, 0, (20.5 + 0.5) * s - 0.5], [0, 51 * s, (13.5 + 0.5) * s - 0.5],
                                       [0, 0, 1]])
    mtime = os.path.getmtime(tmp_path / "o1" / "train-000000.tar")
    assert vda_shard(args + ["--out", str(tmp_path / "o1")]) == 0  # resumable: nothing rewritten
    assert os.path.getmtime(tmp_path / "o1" / "train-000000.tar") == mtime
    assert vda_shard(args + ["--out", str(tmp_path / "o2"), "--workers", "2"]) == 0  # parallel: same bytes
    for i in range(2):
        name = f"train-{i:06d}.tar"
        assert (tmp_path / "o1" / name).read_bytes() == (tmp_path / "o2" / name).read_bytes()


def test_benchmark_json_and_manifests(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for t in range(3):
        cv2.imwrite(str(tmp_path / f"rgb_{t}.png"), rng.integers(0, 256, (14, 14, 3), dtype=np.uint8))
        cv2.imwrite(str(tmp_path / f"d_{t}.png"), np.full((14, 14), 1000 * (t + 1), np.uint16))
        write_dpt(str(tmp_path / f"d_{t}.dpt"), np.full((14, 14), 2.0 * (t + 1), np.float32))
    K4 = np.eye(4)
    K4[:3, :3] = [[10, 0, 6.5], [0, 10, 6.5], [0, 0, 1]]
    bench = {"scannet": [{"scene0": [{"image": f"rgb_{t}.png", "gt_depth": f"d_{t}.png", "factor": 1000.0,
                                      "K": K4.tolist(), "pose": np.eye(4).tolist()} for t in range(3)]}]}
    (tmp_path / "b.json").write_text(json.dumps(bench))
    manifest = {"sequences": [{"dataset": "sintel", "name": "alley", "frames": [f"rgb_{t}.png" for t in range(3)],
                               "depth": [f"d_{t}.dpt" for t in range(3)], "factor": 1.0}]}
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    (tmp_path / "m.csv").write_text("dataset,sequence,frame,depth,factor,fx,fy,cx,cy\n" + "".join(
        f"kitti,drive,rgb_{t}.png,d_{t}.png,256,10,10,6.5,6.5\n" for t in range(3)))
    from vda_lightning.data.format import decode_members
    from vda_lightning.data.streams import SkipCounters, iter_tar_samples

    def only_record(out):
        (raw,) = list(iter_tar_samples(str(out / "train-000000.tar"), SkipCounters(1)))
        return decode_members(raw)

    for kind, src, want_depth in (("benchmark", "b.json", 1.0), ("manifest", "m.json", 2.0),
                                  ("manifest", "m.csv", 1000 / 256)):
        out = tmp_path / f"o_{src}"
        assert vda_shard([kind, str(tmp_path / src), "--out", str(out), "--clip-len", "0", "--no-progress"]) == 0
        rec = only_record(out)
        assert rec.num_frames == 3 and abs(float(rec.depth[0].mean()) - want_depth) < 1e-3
        assert abs(float(rec.depth[2].mean()) - 3 * want_depth) < 1e-3
    assert np.allclose(only_record(tmp_path / "o_b.json").K, K4[:3, :3])
    assert vda_shard(["inspect", str(tmp_path / "o_b.json"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["counts"]["ok"] == 1 and report["counts"]["skipped"] == 0 and report["frames"] == 3


def test_pattern_matching_nothing_is_a_clear_start_up_error(tmp_path):
    dm = VideoDepthDataModule(train_shards=str(tmp_path / "nope-{000..003}.tar"), num_workers=0)
    with pytest.raises(FileNotFoundError, match=r"train_shards: shard .*nope-000.tar.* does not exist"):
        dm.setup("fit")
    dm = VideoDepthDataModule(train_shards=str(tmp_path / "*.tar"), num_workers=0)
    with pytest.raises(FileNotFoundError, match="matches no shard files"):
        dm.setup("fit")
    assert vda_shard(["folders", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
