"""vda-eval with --checkpoint: inference per sequence, colour order, saved predictions and resume."""
import json

import numpy as np
import pytest
from PIL import Image

import vda_lightning.inference as inference
from vda_lightning.evaluation.cli import main

from tests.fakes.benchmark import make_tiny_benchmark


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_checkpoint):
    root = tmp_path_factory.mktemp("ckpt")
    make_tiny_benchmark(root, "bonn", sequences=2, frames=4, height=20, width=28, seed=3)
    return root, tiny_checkpoint


def _args(root, ckpt, out, save):
    return ["--checkpoint", str(ckpt), "--benchmark-root", str(root / "benchmark"), "--benchmark", "bonn",
            "--input-size", "28", "--device", "cpu", "--save-predictions", str(save), "--output", str(out),
            "--no-progress"]


def test_checkpoint_inference_saves_and_resumes(setup, tmp_path, monkeypatch):
    root, ckpt = setup
    seen = []
    real = inference.infer_video_depth

    def recording(model, frames, **kwargs):
        seen.append((frames.copy(), kwargs))
        return real(model, frames, **kwargs)

    monkeypatch.setattr(inference, "infer_video_depth", recording)
    save = tmp_path / "pred"
    first = tmp_path / "first.json"
    assert main(_args(root, ckpt, first, save)) == 0
    assert len(seen) == 2  # one whole-sequence call per sequence
    frames, kwargs = seen[0]
    assert kwargs == {"input_size": 28, "device": "cpu", "precision": "fp32"}
    # the network gets true RGB: what PIL reads from the (true-colour) files on disk
    disk = np.stack([np.array(Image.open(root / "benchmark/bonn/seq00/rgb" / f"{i:05d}.png")) for i in range(4)])
    np.testing.assert_array_equal(frames, disk)
    saved = sorted((save / "bonn").rglob("*.npy"))
    assert len(saved) == 8 and np.load(saved[0]).dtype == np.float32

    # resume: all predictions exist, so no inference runs; the numbers are unchanged
    def refuse(*a, **k):
        raise AssertionError("inference ran although predictions were saved")

    monkeypatch.setattr(inference, "infer_video_depth", refuse)
    second = tmp_path / "second.json"
    assert main(_args(root, ckpt, second, save)) == 0
    a, b = json.loads(first.read_text()), json.loads(second.read_text())
    assert a["depth"] == b["depth"]

    # the saved files score the same through --predictions (the published toolkit layout)
    third = tmp_path / "third.json"
    assert main(["--predictions", str(save), "--benchmark-root", str(root / "benchmark"), "--benchmark", "bonn",
                 "--output", str(third), "--no-progress"]) == 0
    assert json.loads(third.read_text())["depth"]["bonn"]["per_scene"] == a["depth"]["bonn"]["per_scene"]


def test_partial_save_is_recomputed(setup, tmp_path, monkeypatch):
    root, ckpt = setup
    calls = []
    monkeypatch.setattr(inference, "infer_video_depth",
                        lambda model, frames, **k: calls.append(1) or np.ones(frames.shape[:3], np.float32)
                        + np.arange(frames.shape[2], dtype=np.float32) * 0.01)
    save = tmp_path / "pred"
    assert main(_args(root, ckpt, tmp_path / "r.json", save)) == 0
    next((save / "bonn" / "seq01").rglob("*.npy")).unlink()  # interrupted mid-sequence
    calls.clear()
    assert main(_args(root, ckpt, tmp_path / "r2.json", save)) == 0
    assert len(calls) == 1  # only the incomplete sequence ran again
