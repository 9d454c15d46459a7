"""Real SLURM jobs on a one-node localhost cluster (tests/helpers/slurm_cluster.py): the quick-start recipe as a
2-task CPU DDP job submitted through `vda-submit`, and a tiny recipe on real shards preempted with SIGUSR1, requeued and
resumed, which ends with the head weights (bit for bit) and the per-step samples of an uninterrupted 2-rank run.
Skips (with the reason) only where SLURM/munge are missing or cannot start; CI installs them."""
import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest
import torch

from vda_lightning.cluster import is_valid_checkpoint

from tests.fakes.recorder import read_step_keys
from tests.helpers.recipes import DDP_EVERY, DDP_STEPS, ROOT, head_weights, tiny_recipe, write_config
from tests.helpers.slurm_cluster import LocalSlurmCluster, SlurmUnavailable

pytestmark = pytest.mark.slurm
BIN = Path(sys.executable).parent  # vda-submit / vda-fit of this environment


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


def submit(slurm, tmp_path, name, steps, config, overrides=(), env_setup=()):
    run_dir = tmp_path / name
    setup = [f"--env-setup={line}" for line in env_setup]
    cmd = [str(BIN / "vda-submit"), "--config", str(config), "--run-dir", str(run_dir), "--gpus-per-node", "0",
           "--tasks-per-node", "2", "--cpus-per-task", "1", "--job-name", name, *setup, "--",
           "--trainer.max_steps", str(steps), *overrides]
    r = slurm.run(cmd)
    job = r.stdout.strip()
    assert job.isdigit(), r.stdout + r.stderr
    assert (run_dir / "slurm" / f"{name}.sbatch").is_file()  # the rendered script is kept beside the run
    return job, run_dir


def job_log(run_dir, name, job):
    return (run_dir / "slurm" / f"{name}-{job}.out").read_text()


def final_step(run_dir):
    return json.loads((run_dir / "final_validation.json").read_text())


def test_two_rank_cpu_ddp_job_trains_checkpoints_and_reports_once(slurm, tmp_path):
    """The quick-start recipe itself (synthetic shards, wandb off), shrunk on the command line."""
    data = "--data.init_args."
    overrides = ["--validate_before_fit=false", "--trainer.logger=false", "--trainer.val_check_interval=4",
                 "--trainer.enable_progress_bar=false", "--checkpoint.every_n_train_steps=2",
                 f"{data}synthetic.dir={tmp_path / 'synthetic'}", f"{data}synthetic.train_clips=4",
                 f"{data}synthetic.val_clips=2", f"{data}epoch_length=4"]
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


def test_sigusr1_requeues_and_the_job_resumes_to_the_configured_step(slurm, tmp_path, synthetic_shards,
                                                                      ddp_reference):
    """The shared 2-rank resume recipe (tests/helpers/recipes.py) as a SLURM job, preempted by SIGUSR1 after its first
    checkpoint; compared with the session's uninterrupted 2-rank run of the same recipe."""
    steps = DDP_STEPS
    cfg = tiny_recipe(synthetic_shards, None, steps, DDP_EVERY)
    cfg["trainer"]["logger"] = False
    config = write_config(tmp_path / "tiny.yaml", cfg)
    keys = tmp_path / "job.keys"
    job, run_dir = submit(slurm, tmp_path, "pre", steps, config, env_setup=[
        f"export PYTHONPATH={ROOT}:${{PYTHONPATH:-}}", f"export VDA_TEST_STEP_KEYS={keys}"])
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
    assert "data resume: epoch" in log  # the data stream continued where the preempted job left it
    assert is_valid_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    head, saved = head_weights(run_dir / "checkpoints" / "last.ckpt")
    assert saved["global_step"] == steps
    requeued_at = torch.load(requeue_ckpt, weights_only=True)["global_step"]
    assert 0 < requeued_at < steps
    # the requeued job ends where an uninterrupted run ends, having trained on the same samples at every step
    ref_head, ref_keys = ddp_reference["head"], ddp_reference["keys"]
    assert head.keys() == ref_head.keys() and all(torch.equal(head[k], ref_head[k]) for k in ref_head)
    for rank in range(2):
        assert read_step_keys(str(keys), rank) == ref_keys[rank], f"rank {rank}"
    print(f"requeued at step {requeued_at} of {steps}: {len(ref_head)} head tensors bit-identical to the "
          f"uninterrupted run, per-step sample keys equal on both ranks")
