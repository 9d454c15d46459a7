"""vda eval faults of the fault-injection pass: saved predictions of another checkpoint or setting are never reused,
8-bit ground truth and image checkpoints are refused, a singular TAE pose and a NaN prediction under --devices 2
are one line each (exit 2), NaN weights never give numbers."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from vda_lightning import save_model
from vda_lightning.evaluation.cli import main
from vda_lightning.models import build_image_model, build_video_model

from tests.fakes.benchmark import make_tiny_benchmark

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("rel_eval")
    make_tiny_benchmark(root, "bonn", sequences=2, frames=3, height=20, width=28, seed=3)
    make_tiny_benchmark(root, "scannet", sequences=2, frames=13, with_pose=True, seed=2)
    torch.manual_seed(0)
    a = save_model(build_video_model("vitt").eval(), root / "a.safetensors")
    torch.manual_seed(1)
    b = save_model(build_video_model("vitt").eval(), root / "b.safetensors")
    return root, a, b


def run(capsys, *args) -> tuple[int, list[str]]:
    code = main([str(a) for a in args])
    err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    return code, err


def ckpt_args(root, ckpt, save, out, size=28):
    return ["--checkpoint", ckpt, "--benchmark-root", root / "benchmark", "--benchmark", "bonn", "--input-size",
            size, "--device", "cpu", "--save-predictions", save, "--output", out, "--no-progress"]


def test_saved_predictions_of_another_model_or_setting_are_refused(bench, tmp_path, capsys):
    root, a, b = bench
    save = tmp_path / "pred"
    code, err = run(capsys, *ckpt_args(root, a, save, tmp_path / "a.json"))
    assert code == 0 and not err
    manifest = json.loads((save / "manifest.json").read_text())
    assert manifest["input_size"] == 28 and manifest["precision"] == "fp32" and manifest["encoder"] == "vitt"
    assert len(manifest["checkpoint_sha256"]) == 64 and manifest["version"]
    first = json.loads((tmp_path / "a.json").read_text())["depth"]["bonn"]["abs_relative_difference"]

    for args, says in [(ckpt_args(root, b, save, tmp_path / "b.json"), "checkpoint_sha256"),       # another model
                       (ckpt_args(root, a, save, tmp_path / "c.json", size=42), "input_size 28 (now 42)"),
                       ([*ckpt_args(root, a, save, tmp_path / "d.json"), "--precision", "bf16"], "precision")]:
        code, err = run(capsys, *args)
        assert code == 2 and len(err) == 1 and str(save) in err[0] and says in err[0], err
    assert not (tmp_path / "b.json").exists()

    code, err = run(capsys, *ckpt_args(root, a, save, tmp_path / "e.json"))  # the same model: resumed, same numbers
    assert code == 0
    assert json.loads((tmp_path / "e.json").read_text())["depth"]["bonn"]["abs_relative_difference"] == first

    (save / "manifest.json").unlink()  # predictions nobody vouches for
    code, err = run(capsys, *ckpt_args(root, a, save, tmp_path / "f.json"))
    assert code == 2 and "no manifest.json" in err[0]


def test_an_8_bit_ground_truth_png_is_refused(bench, tmp_path, capsys):
    root, *_ = bench
    bench_dir = tmp_path / "benchmark"
    make_tiny_benchmark(tmp_path, "bonn", sequences=1, frames=3, height=20, width=28, seed=3)
    gt = bench_dir / "bonn" / "seq00" / "depth" / "00001.png"
    eight = (cv2.imread(str(gt), cv2.IMREAD_UNCHANGED) // 256).astype(np.uint8)  # what an image tool might save
    cv2.imwrite(str(gt), eight)
    code, err = run(capsys, "--predictions", tmp_path / "predictions", "--benchmark-root", bench_dir,
                    "--benchmark", "bonn", "--output", tmp_path / "r.json", "--no-progress")
    assert code == 2 and len(err) == 1 and str(gt) in err[0] and "8-bit image, 16-bit expected" in err[0]
    assert not (tmp_path / "r.json").exists()


def test_an_image_checkpoint_is_refused_like_vda_infer_does(bench, tmp_path, capsys):
    root, *_ = bench
    image = save_model(build_image_model("vitt"), tmp_path / "dav2.safetensors")
    code, err = run(capsys, *ckpt_args(root, image, tmp_path / "pred", tmp_path / "r.json"))
    assert code == 2 and len(err) == 1 and str(image) in err[0]
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "pred").exists()


def test_nan_weights_give_no_numbers(bench, tmp_path, capsys):
    root, *_ = bench
    model = build_video_model("vitt").eval()
    with torch.no_grad():
        next(model.head.parameters()).fill_(float("nan"))
    bad = save_model(model, tmp_path / "nan.safetensors")
    code, err = run(capsys, *ckpt_args(root, bad, tmp_path / "pred", tmp_path / "r.json"))
    assert code == 2 and len(err) == 1 and "NaN/Inf weight values" in err[0]
    assert not (tmp_path / "r.json").exists()


def test_a_singular_tae_pose_is_one_line_naming_file_and_frame(bench, tmp_path, capsys):
    root, *_ = bench
    make_tiny_benchmark(tmp_path, "scannet", sequences=2, frames=13, with_pose=True, seed=2)
    index = tmp_path / "benchmark" / "scannet" / "scannet_video.json"
    doc = json.loads(index.read_text())
    entry = doc["scannet"][1]["seq01"][11]
    entry["pose"] = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]]  # rank 3
    index.write_text(json.dumps(doc))
    code, err = run(capsys, "--predictions", tmp_path / "predictions", "--benchmark-root", tmp_path / "benchmark",
                    "--benchmark", "scannet", "--tae", "--output", tmp_path / "r.json", "--no-progress")
    assert code == 2 and len(err) == 1, err
    assert str(index) in err[0] and "'seq01', frame 11 (seq01/rgb/00011.png)" in err[0] and "singular" in err[0]


def test_a_nan_prediction_under_two_processes_is_one_line(bench, tmp_path):
    make_tiny_benchmark(tmp_path, "bonn", sequences=3, frames=3, height=20, width=28, seed=4)
    pred = tmp_path / "predictions" / "bonn" / "seq01" / "rgb" / "00001.npy"
    arr = np.load(pred)
    arr[2, 3] = np.nan
    np.save(pred, arr)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    proc = subprocess.run(["timeout", "-s", "KILL", "150", sys.executable, "-m", "vda_lightning", "eval",
                           "--predictions", str(tmp_path / "predictions"), "--benchmark-root",
                           str(tmp_path / "benchmark"), "--benchmark", "bonn", "--output", str(tmp_path / "r.json"),
                           "--no-progress", "--devices", "2"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and str(pred) in errors[0] and "NaN" in errors[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "ProcessRaisedException" not in proc.stderr
    assert not (tmp_path / "r.json").exists()
