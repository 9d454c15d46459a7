"""DDP: a 2-process gloo run gives the same numbers as one process, with an odd number of sequences."""
import json
import os
import subprocess
import sys

import pytest

from vda_lightning.evaluation.cli import main

from tests.fakes.benchmark import make_tiny_benchmark

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    make_tiny_benchmark(root, "kitti", sequences=3, frames=4, seed=1)              # 3 sequences over 2 ranks
    make_tiny_benchmark(root, "scannet", sequences=5, frames=13, with_pose=True, seed=2)  # TAE: frames 10..12
    return root


def _args(root, out):
    return ["--predictions", str(root / "predictions"), "--benchmark-root", str(root / "benchmark"),
            "--benchmark", "kitti,scannet", "--tae", "--output", str(out), "--no-progress"]


def test_two_processes_match_one(tiny, tmp_path):
    one = tmp_path / "one.json"
    assert main(_args(tiny, one)) == 0
    two = tmp_path / "two.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    # timeout -s KILL: a deadlocked collective ignores SIGTERM (field notes)
    proc = subprocess.run(["timeout", "-s", "KILL", "150", sys.executable, "-m", "vda_lightning.evaluation.cli",
                           *_args(tiny, two), "--devices", "2"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    assert b["meta"]["processes"] == 2 and a["meta"]["processes"] == 1
    for name in ("kitti", "scannet"):
        assert b["depth"][name]["sequences"] == a["depth"][name]["sequences"]
        assert b["depth"][name]["scenes"] == a["depth"][name]["scenes"]
        assert b["depth"][name]["per_scene"] == a["depth"][name]["per_scene"]  # each sequence scored whole
        for key in ("abs_relative_difference", "rmse_linear", "delta1_acc"):
            assert b["depth"][name][key] == pytest.approx(a["depth"][name][key], rel=1e-12, abs=0)
    assert a["depth"]["kitti"]["sequences"] == 3 and a["tae"]["scannet"]["sequences"] == 5
    assert b["tae"]["scannet"]["per_scene"] == a["tae"]["scannet"]["per_scene"]
    assert b["tae"]["scannet"]["mean"] == pytest.approx(a["tae"]["scannet"]["mean"], rel=1e-12)
    assert a["tae"]["scannet"]["mean"] > 0
