"""Real SLURM jobs on a one-node localhost cluster (tests/helpers/slurm_cluster.py): the quick-start recipe as a
2-task CPU DDP job submitted through `vda-submit`, and a tiny recipe on real shards preempted with SIGUSR1, requeued and
resumed, which ends with the head weights (bit for bit) and the per-step samples of an uninterrupted 2-rank run.
Skips (with the reason) only where SLURM/munge are missing or cannot start; CI installs them."""
import json
import os
import shutil
import subprocess
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


def _short_clips(root: Path, frames=(3, 2, 4)) -> list[Path]:
    import cv2
    import numpy as np

    rng = np.random.default_rng(1)
    clips = []
    for c, n in enumerate(frames):
        clip = root / f"clip{c}"
        clip.mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(clip / f"{i:03d}.png"), rng.integers(0, 255, (28, 42, 3), dtype=np.uint8))
        clips.append(clip)
    return clips


def test_dry_run_infer_script_runs_two_tasks_under_an_empty_environment(slurm, tmp_path, tiny_checkpoint):
    """Issue 30: the script of `vda submit --dry-run` runs under `env -i PATH=/usr/bin:/bin` (the interpreter by
    its absolute path, no venv on PATH); issue 29: a 2-task `vda submit infer` job shares the inputs and writes one
    manifest."""
    clips, run_dir, out = _short_clips(tmp_path / "clips"), tmp_path / "inf", tmp_path / "out"
    submit_args = ["infer", "--run-dir", str(run_dir), "--gpus-per-node", "0", "--tasks-per-node", "2",
                   "--cpus-per-task", "1", "--dry-run", "--", *map(str, clips), "--checkpoint", str(tiny_checkpoint),
                   "--input-size", "28", "--device", "cpu", "--output-dir", "out", "--no-progress"]
    r = subprocess.run([str(BIN / "vda-submit"), *submit_args], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0 and not run_dir.exists(), r.stderr  # a dry run writes nothing
    script = tmp_path / "job.sbatch"
    script.write_text(r.stdout)
    (run_dir / "slurm").mkdir(parents=True)  # sbatch opens the log there before the script runs
    empty = ["env", "-i", "PATH=/usr/bin:/bin", f"SLURM_CONF={slurm.conf}"]
    job = slurm.run([*empty, "sbatch", "--parsable", str(script)]).stdout.strip()
    state = slurm.wait_job(job, timeout=300)
    log = (run_dir / "slurm" / f"vda-infer-{job}.out").read_text()
    assert state == "COMPLETED", log[-3000:]
    assert "rank 0/2: 1 of 3 inputs, 4 of 9 frames: clip2" in log and "rank 1/2: 2 of 3 inputs" in log
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert [e["input"] for e in manifest["inputs"]] == list(map(str, clips)) and manifest["world_size"] == 2
    assert manifest["totals"]["complete"] == 3 and manifest["output_dir"] == str(out)  # `cd` to the submit folder
    assert sorted(p.name for p in out.glob("*_depths.npz")) == ["clip0_depths.npz", "clip1_depths.npz",
                                                               "clip2_depths.npz"]


def test_pseudolabel_job_array_of_two_tasks_labels_each_shard_once(slurm, tmp_path, tiny_checkpoints):
    from vda_lightning.data import generate_synthetic_shards

    shards = generate_synthetic_shards(str(tmp_path / "shards"), n_train_clips=0, n_val_clips=0, height=28,
                                       width=42, seed=0, n_image_samples=3, images_per_shard=1,
                                       progress=False)["image"]
    run_dir, out = tmp_path / "pl", tmp_path / "labelled"
    cmd = [str(BIN / "vda-submit"), "pseudolabel", "--run-dir", str(run_dir), "--array-size", "2",
           "--gpus-per-node", "0", "--tasks-per-node", "1", "--cpus-per-task", "1", "--",
           "::".join(shards), "--output", str(out), "--teacher-encoder", "vitt",
           "--teacher-checkpoint", str(tiny_checkpoints["image"]), "--input-size", "28", "--device", "cpu"]
    job = slurm.run(cmd).stdout.strip()
    assert job.isdigit(), job
    logs = []
    for task in (0, 1):
        state = slurm.wait_job(f"{job}_{task}", timeout=300)
        logs.append((run_dir / "slurm" / f"vda-pseudolabel-{job}_{task}.out").read_text())
        assert state == "COMPLETED", logs[-1][-3000:]
    assert any("rank 0/2:" in log for log in logs) and any("rank 1/2:" in log for log in logs)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert [e["input"] for e in manifest["inputs"]] == shards and manifest["world_size"] == 2
    assert manifest["totals"]["complete"] == 3 and manifest["checkpoint_sha256"]
    assert sorted(p.name for p in out.glob("*.tar")) == sorted(os.path.basename(s) for s in shards)
