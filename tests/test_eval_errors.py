"""Bad input: each case a clear error naming the file, or the published skip stated in the output."""
import json

import cv2
import numpy as np
import pytest

from vda_lightning.evaluation.cli import main
from vda_lightning.evaluation.functional import sequence_depth_metrics

from tests.fakes.benchmark import make_tiny_benchmark


@pytest.fixture
def tiny(tmp_path):
    return make_tiny_benchmark(tmp_path, "kitti", sequences=2, frames=4, seed=5)


def _run(root, *extra, benchmark="kitti"):
    return main(["--predictions", str(root / "predictions"), "--benchmark-root", str(root / "benchmark"),
                 "--benchmark", benchmark, "--output", str(root / "out" / "r.json"), "--no-progress", *extra])


def test_missing_prediction_frame_is_skipped_and_reported(tiny, capsys):
    missing = tiny / "predictions/kitti/seq01/rgb/00002.npy"
    missing.unlink()
    assert _run(tiny) == 0
    out = capsys.readouterr().out
    assert "1 prediction file(s) missing" in out and "kitti/seq01/rgb/00002.npy" in out and "skipped" in out
    res = json.loads((tiny / "out/r.json").read_text())["depth"]["kitti"]
    assert res["missing_predictions"] == {"seq01": ["kitti/seq01/rgb/00002.npy"]}
    assert res["frames"] == [4, 3]
    # the scene is scored on the 3 remaining frames, as the published code does
    import torch

    frames = [0, 1, 3]
    gt = np.stack([cv2.imread(str(tiny / f"benchmark/kitti/seq01/depth/{i:05d}.png"), -1) / 256.0 for i in frames])
    gt[gt == 0] = -1
    pred = np.stack([np.load(tiny / f"predictions/kitti/seq01/rgb/{i:05d}.npy") for i in frames])
    ref = sequence_depth_metrics(torch.from_numpy(pred), torch.from_numpy(gt), 80.0)
    assert res["per_scene"][1] == pytest.approx([ref["abs_rel"], ref["rmse"], ref["delta1"]], rel=1e-12)
    assert "missing" in (tiny / "out/r.md").read_text()


def test_depth_png_of_wrong_size(tiny, capsys):
    bad = tiny / "benchmark/kitti/seq00/depth/00002.png"
    cv2.imwrite(str(bad), np.ones((10, 12), np.uint16))
    assert _run(tiny) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "10x12" in err and "00000.png" in err


def test_tae_json_without_pose(tmp_path, capsys):
    make_tiny_benchmark(tmp_path, "scannet", sequences=1, frames=12, with_pose=False)
    assert _run(tmp_path, "--tae", benchmark="scannet") == 2
    err = capsys.readouterr().err
    assert "scannet_video.json" in err and "lacks K, pose" in err and "TAE" in err


def test_empty_benchmark_root(tmp_path, capsys):
    (tmp_path / "benchmark").mkdir()
    (tmp_path / "predictions").mkdir()
    assert _run(tmp_path) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "benchmark") in err and "empty" in err


def test_missing_json_and_corrupt_prediction(tiny, capsys):
    assert _run(tiny, benchmark="bonn") == 2
    assert "bonn/bonn_video.json: benchmark index not found" in capsys.readouterr().err
    corrupt = tiny / "predictions/kitti/seq00/rgb/00001.npy"
    corrupt.write_bytes(b"not numpy")
    assert _run(tiny) == 2
    assert str(corrupt) in capsys.readouterr().err
    np.save(corrupt, np.full((24, 32), np.nan, np.float32))
    assert _run(tiny) == 2
    assert "NaN" in capsys.readouterr().err


def test_sequence_without_any_prediction(tiny, capsys):
    for f in (tiny / "predictions/kitti/seq00").rglob("*.npy"):
        f.unlink()
    assert _run(tiny) == 2
    err = capsys.readouterr().err
    assert "seq00" in err and "no prediction" in err and "kitti/seq00/rgb/00000.npy" in err
