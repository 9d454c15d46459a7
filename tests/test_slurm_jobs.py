"""Real SLURM jobs on a one-node localhost cluster (tests/slurm_cluster.py): the quick-start-sized training as a
2-task CPU DDP job submitted through `vda-submit`, and the same job preempted with SIGUSR1, requeued and resumed.
Skips (with the reason) only where SLURM/munge are missing or cannot start; CI installs them."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from slurm_cluster import LocalSlurmCluster, SlurmUnavailable

from vda_lightning.cluster import is_valid_checkpoint

pytestmark = pytest.mark.slurm
BIN = Path(sys.executable).parent  # vda-submit / vda-fit of this environment

# Quick-start-sized recipe: vitt, tiny toy clips, a few steps. Overrides for the tests go on the command line.
TINY = """
seed_everything: 0
model: {encoder: vitt, lr: 1.0e-3}
data:
  class_path: vda_lightning.training.toy_data.ToyDataModule
  init_args: {batch_size: 1, num_frames: 2, height: 28, width: 28, val_clips: 2}
trainer: {max_steps: 4, logger: false, enable_progress_bar: false, check_val_every_n_epoch: null,
          val_check_interval: null, limit_val_batches: 2}
checkpoint: {every_n_train_steps: 2}
"""


@pytest.fixture(scope="session")
def slurm():
    cluster = LocalSlurmCluster()  # its own /tmp dir: munged (user munge) cannot enter pytest's 0700 tmp dirs
    try:
        cluster.start()
    except SlurmUnavailable as e:
        pytest.skip(f"no local SLURM cluster: {e}")
    cluster.env["PATH"] = f"{BIN}{os.pathsep}{cluster.env['PATH']}"
    yield cluster
    cluster.stop()
    shutil.rmtree(cluster.root, ignore_errors=True)


def submit(slurm, tmp_path, name, steps, config=None, overrides=()):
    if config is None:
        config = tmp_path / "tiny.yaml"
        config.write_text(TINY)
    run_dir = tmp_path / name
    cmd = [str(BIN / "vda-submit"), "--config", str(config), "--run-dir", str(run_dir), "--gpus-per-node", "0",
           "--tasks-per-node", "2", "--cpus-per-task", "1", "--job-name", name, "--", "--trainer.max_steps", str(steps),
           *overrides]
    r = slurm.run(cmd)
    job = r.stdout.strip()
    assert job.isdigit(), r.stdout + r.stderr
    assert (run_dir / "slurm" / f"{name}.sbatch").is_file()  # the rendered script is kept beside the run
    return job, run_dir


def job_log(run_dir, name, job):
    return (run_dir / "slurm" / f"{name}-{job}.out").read_text()


def final_step(run_dir):
    return json.loads((run_dir / "checkpoints" / "final_validation.json").read_text())


def test_two_rank_cpu_ddp_job_trains_checkpoints_and_reports_once(slurm, tmp_path):
    """The quick-start recipe itself (synthetic shards, wandb off), shrunk on the command line."""
    data = "--data.init_args."
    overrides = ["--validate_before_fit=false", "--trainer.logger=false", "--trainer.val_check_interval=4",
                 "--trainer.enable_progress_bar=false", "--checkpoint.every_n_train_steps=2",
                 f"{data}synthetic_dir={tmp_path / 'synthetic'}", f"{data}synthetic_train_clips=4",
                 f"{data}synthetic_val_clips=2", f"{data}epoch_length=4"]
    quickstart = Path(__file__).resolve().parents[1] / "conf" / "quickstart.yaml"
    job, run_dir = submit(slurm, tmp_path, "qs", steps=4, config=quickstart, overrides=overrides)
    state = slurm.wait_job(job, timeout=240)
    log = job_log(run_dir, "qs", job)
    assert state == "COMPLETED", log[-3000:]
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in log and "GLOBAL_RANK: 1, MEMBER: 2/2" in log
    assert "effective batch 4" in log  # 2 ranks x the recipe's 2 clips
    assert is_valid_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert log.count("Validation after 4 steps") == 1  # final metrics from rank 0 only
    assert final_step(run_dir)["step"] == 4


def test_sigusr1_requeues_and_the_job_resumes_to_the_configured_step(slurm, tmp_path):
    steps = 40  # tiny steps: enough of them that the signal lands mid-run even when it is delivered late
    job, run_dir = submit(slurm, tmp_path, "pre", steps=steps)
    deadline = time.monotonic() + 180
    while not (run_dir / "checkpoints" / "last.ckpt").exists():  # mid-run: a periodic checkpoint exists
        assert time.monotonic() < deadline, "no checkpoint within 180 s"
        assert slurm.job_field(job, "JobState") in ("PENDING", "RUNNING", "CONFIGURING"), job_log(run_dir, "pre", job)
        time.sleep(1)
    slurm.run(["scancel", "--signal=USR1", "--batch", job])  # as a preemption warning to the batch shell
    state = slurm.wait_job(job, timeout=300)
    log = job_log(run_dir, "pre", job)
    assert state == "COMPLETED", log[-3000:]
    assert slurm.job_field(job, "Restarts") == "1"
    requeue_ckpt = run_dir / "checkpoints" / "requeue.ckpt"
    assert "SIGUSR1: saved" in log and f"resuming from {requeue_ckpt}" in log
    assert f"Restored all states from the checkpoint at {requeue_ckpt}" in log
    assert log.count(f"Validation after {steps} steps") == 1 and final_step(run_dir)["step"] == steps
    assert is_valid_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    last = str(run_dir / "checkpoints" / "last.ckpt")
    r = subprocess.run([sys.executable, "-c",
                        f"import torch; print(torch.load({last!r}, weights_only=True)['global_step'])"],
                       capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == str(steps), r.stderr
