"""A 2-process DDP run (gloo, CPU) equals a 1-process run over the same clips (real shards through
VideoDepthDataModule; the 1-process run accumulates the two readers' clips that the 2 ranks train on together):
same head weights after N steps and the same validation metrics; only rank 0 writes checkpoints; the effective
batch is stated. The runs are subprocesses bounded by `timeout -s KILL` (Lightning catches SIGTERM; a DDP hang
ignores it)."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).parent / "helpers" / "ddp_equivalence_script.py"
STEPS = 3


def _run(devices: int, tmp: Path, shards: Path) -> dict:
    run_dir = tmp / f"p{devices}"
    run_dir.mkdir()
    out = run_dir / "result.pt"
    cmd = ["timeout", "-s", "KILL", "240", sys.executable, str(SCRIPT), "--devices", str(devices),
           "--steps", str(STEPS), "--out", str(out), "--run-dir", str(run_dir), "--shards", str(shards)]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert r.returncode == 0, f"{devices}-process run failed ({r.returncode}):\n{r.stderr[-3000:]}"
    result = torch.load(out, weights_only=True)
    result["writers"] = (run_dir / "writers.txt").read_text().split("\n")
    result["log"] = r.stdout + r.stderr
    return result


@pytest.fixture(scope="module")
def runs(tmp_path_factory, synthetic_shards):
    tmp = tmp_path_factory.mktemp("ddp")
    return _run(1, tmp, synthetic_shards), _run(2, tmp, synthetic_shards)


def test_two_processes_train_the_same_head_as_one(runs):
    one, two = runs
    assert two["world_size"] == 2 and one["world_size"] == 1
    moved = max((one["head"][k] - one["initial_head"][k]).abs().max().item() for k in one["head"])
    assert moved > 1e-3  # training really changed the weights, so equality below means something
    diff = max((one["head"][k] - two["head"][k]).abs().max().item() for k in one["head"])
    print(f"1 vs 2 processes: head weights moved {moved:.3e}, differ by {diff:.3e} after {STEPS} steps")
    assert diff < 5e-6, f"head weights differ by {diff:.2e} after {STEPS} steps"


def test_two_processes_give_the_same_validation_metrics(runs):
    one, two = runs
    assert one["val"].keys() == two["val"].keys() == {"synthetic"}
    assert one["val"]["synthetic"]["sequences"] == 3  # every validation clip once, also split over 2 ranks
    for metric, value in one["val"]["synthetic"].items():
        assert two["val"]["synthetic"][metric] == pytest.approx(value, rel=1e-4), metric


def test_only_rank_zero_writes_checkpoints_and_the_effective_batch_is_stated(runs):
    one, two = runs
    written = [line.split() for line in two["writers"] if line]
    assert len(written) == STEPS and {rank for rank, _ in written} == {"0"}
    assert one["effective_batch"] == two["effective_batch"] == 2
    assert "2 processes; 1 clips/device × 1 accumulation → effective batch 2" in two["log"]
    assert "1 processes; 1 clips/device × 2 accumulation → effective batch 2" in one["log"]
