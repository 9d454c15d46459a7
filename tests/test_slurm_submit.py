"""vda-submit rendering, the resume resolver and the DDP arithmetic (pure; no cluster needed)."""
import io
import os
import sys
import zipfile

import pytest
import torch

from vda_lightning.cluster import effective_batch_size, find_resume_checkpoint, scaled_learning_rate
from vda_lightning.cluster.requeue import slurm_job_id
from vda_lightning.cluster.submit import SubmitOptions, main, render_sbatch


def test_two_nodes_by_eight_gpus_meets_lightnings_slurm_requirements():
    text = render_sbatch(SubmitOptions(config="conf/quickstart.yaml", run_dir="runs/x", nodes=2, gpus_per_node=8,
                                       partition="gpu", account="proj", qos="high", time="24:00:00", mem="480G",
                                       env_setup=["module load cuda"], sbatch_extra=["--exclusive"]))
    for line in ["#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=8", "#SBATCH --gres=gpu:8",
                 "#SBATCH --signal=USR1@120", "#SBATCH --requeue", "#SBATCH --output=runs/x/slurm/%x-%j.out",
                 "#SBATCH --partition=gpu", "#SBATCH --account=proj", "#SBATCH --qos=high", "#SBATCH --mem=480G",
                 "#SBATCH --time=24:00:00", "#SBATCH --exclusive", "module load cuda"]:
        assert line in text.splitlines(), line
    launch = next(line for line in text.splitlines() if line.startswith("srun "))
    assert f"{sys.executable} -m vda_lightning fit --config conf/quickstart.yaml" in launch  # no PATH lookup
    assert "--trainer.num_nodes 2 --trainer.devices 8 " in launch and "--trainer.accelerator gpu" in launch
    assert "RequeueOnSignal" in launch and '"${RESUME_ARGS[@]}"' in launch


def test_cpu_mode_uses_tasks_per_node_and_no_gpus():
    text = render_sbatch(SubmitOptions(config="c.yaml", run_dir="r", gpus_per_node=0, tasks_per_node=2))
    assert "#SBATCH --ntasks-per-node=2" in text and "gres" not in text
    assert "--trainer.accelerator cpu" in text and "--trainer.devices 2 " in text


def test_tasks_must_equal_gpus_and_bad_values_fail_clearly(capsys):
    with pytest.raises(ValueError, match="one task per GPU"):
        SubmitOptions(config="c", run_dir="r", gpus_per_node=4, tasks_per_node=2)
    assert main(["--config", "missing.yaml", "--run-dir", "/tmp/x-never", "--gpus-per-node", "0"]) == 2
    assert "missing.yaml: training config not found" in capsys.readouterr().err


def _ckpt(path, step):
    torch.save({"global_step": step}, path)


def test_resume_picks_the_newest_valid_checkpoint(tmp_path):
    assert find_resume_checkpoint(tmp_path / "absent") is None
    (tmp_path / "checkpoints").mkdir()
    old, new, cut = (tmp_path / "checkpoints" / n for n in ("a.ckpt", "b.ckpt", "c.ckpt"))
    _ckpt(old, 1)
    _ckpt(new, 2)
    buffer = io.BytesIO()
    torch.save({"global_step": 3}, buffer)
    cut.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])  # a half-written file
    hidden = tmp_path / "checkpoints" / ".tmp-x.ckpt"  # an atomic writer's staging name
    _ckpt(hidden, 4)
    for i, p in enumerate((old, new, cut, hidden)):
        os.utime(p, (1000 + i, 1000 + i))
    assert find_resume_checkpoint(tmp_path) == new
    with zipfile.ZipFile(new) as z:  # flip bytes inside the pickled payload: CRC check catches it
        info = z.getinfo(next(n for n in z.namelist() if n.endswith("data.pkl")))
    data = bytearray(new.read_bytes())
    h = info.header_offset  # local header: 30 bytes, then name and extra (lengths at +26 and +28)
    start = h + 30 + int.from_bytes(data[h + 26:h + 28], "little") + int.from_bytes(data[h + 28:h + 30], "little")
    data[start + 2] ^= 0xFF
    new.write_bytes(bytes(data))
    os.utime(new, (1001, 1001))
    assert find_resume_checkpoint(tmp_path) == old


def test_effective_batch_and_lr_scaling_by_hand():
    assert effective_batch_size(per_device=2, devices=8, num_nodes=2, accumulate=3) == 96
    assert scaled_learning_rate(1e-4, 16, 64, "linear") == pytest.approx(4e-4)
    assert scaled_learning_rate(1e-4, 16, 64, "sqrt") == pytest.approx(2e-4)
    assert scaled_learning_rate(1e-4, 16, 64, "none") == 1e-4
    with pytest.raises(ValueError):
        effective_batch_size(0, 8)


def test_requeue_job_id_handles_array_jobs():
    assert slurm_job_id({"SLURM_JOB_ID": "42"}) == "42"
    assert slurm_job_id({"SLURM_JOB_ID": "43", "SLURM_ARRAY_JOB_ID": "40", "SLURM_ARRAY_TASK_ID": "3"}) == "40_3"
    assert slurm_job_id({}) is None


def test_signal_on_the_final_step_finishes_instead_of_requeueing(tmp_path):
    from types import SimpleNamespace

    import torch

    from vda_lightning.cluster.requeue import RequeueExit, RequeueOnSignal

    saved = []
    strategy = SimpleNamespace(reduce=lambda t, reduce_op: t, barrier=lambda name: None)
    trainer = SimpleNamespace(accumulate_grad_batches=1, strategy=strategy, max_steps=10, global_step=10,
                              checkpoint_callback=None, default_root_dir=str(tmp_path), is_global_zero=True,
                              save_checkpoint=saved.append)
    module = SimpleNamespace(device=torch.device("cpu"))
    cb = RequeueOnSignal(requeue=False)
    cb.pending = True
    cb.on_train_batch_end(trainer, module, None, None, 9)  # last step: no save, no exit
    assert saved == [] and not cb.pending
    trainer.global_step = 4
    cb.pending = True
    try:
        cb.on_train_batch_end(trainer, module, None, None, 3)
        raise AssertionError("expected RequeueExit mid-run")
    except RequeueExit:
        pass
    assert saved == [str(tmp_path / "checkpoints" / "requeue.ckpt")]


def test_the_script_uses_the_run_folder_and_a_used_folder_needs_resume(tmp_path, capsys, monkeypatch):
    """vda-submit's run folder is vda-fit's (`--trainer.default_root_dir` only); a folder that already holds a run
    is refused for a fresh submission (one line, exit 2) and accepted with --resume."""
    text = render_sbatch(SubmitOptions(config="c.yaml", run_dir="runs/x", gpus_per_node=0, tasks_per_node=2))
    launch = next(line for line in text.splitlines() if line.startswith("srun "))
    assert "--trainer.default_root_dir runs/x " in launch and "checkpoint.dirpath" not in launch
    config = tmp_path / "c.yaml"
    config.write_text("model: {encoder: vitt}\n")
    run_dir = tmp_path / "run"
    (run_dir / "slurm").mkdir(parents=True)  # what a submission leaves before the job starts does not count
    (run_dir / "checkpoints").mkdir()
    torch.save({"global_step": 3}, run_dir / "checkpoints" / "last.ckpt")
    args = ["--config", str(config), "--run-dir", str(run_dir), "--gpus-per-node", "0"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"run folder {run_dir} already holds a run" in err[0] and "--resume" in err[0]
    submitted = []
    monkeypatch.setattr("subprocess.run", lambda cmd, **kw: submitted.append(cmd) or
                        type("R", (), {"returncode": 0, "stdout": "42\n", "stderr": ""})())
    assert main([*args, "--resume"]) == 0 and submitted[0][0] == "sbatch"


def test_dry_run_checks_what_a_submission_checks_and_a_failed_one_leaves_nothing(tmp_path, capsys, monkeypatch):
    """Issue 30: --dry-run refuses what a real submit refuses (exit 2, one line); sbatch missing leaves no script
    and no run folder behind; the script cds to the submitting folder and names the interpreter by its path."""
    config, run_dir = tmp_path / "c.yaml", tmp_path / "run"
    args = ["--config", str(config), "--run-dir", str(run_dir), "--gpus-per-node", "0"]
    assert main([*args, "--dry-run"]) == 2 and "training config not found" in capsys.readouterr().err
    config.write_text("model: {encoder: vitt}\n")
    (run_dir / "checkpoints").mkdir(parents=True)
    torch.save({"global_step": 3}, run_dir / "checkpoints" / "last.ckpt")
    assert main([*args, "--dry-run"]) == 2 and "already holds a run" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    assert main([*args, "--dry-run", "--resume"]) == 0
    text = capsys.readouterr().out
    assert f"cd {tmp_path}" in text.splitlines()
    assert f"{sys.executable} -m vda_lightning submit --find-checkpoint" in text
    assert not (run_dir / "slurm").exists()  # a dry run writes nothing
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    fresh = tmp_path / "fresh"
    assert main(["--config", str(config), "--run-dir", str(fresh), "--gpus-per-node", "0"]) == 2
    assert "sbatch not found" in capsys.readouterr().err and not fresh.exists()
    assert main([*args, "--resume"]) == 2 and not (run_dir / "slurm").exists()


def test_infer_and_pseudolabel_jobs_render_tasks_arrays_and_a_requeue_trap(capsys):
    text = render_sbatch(SubmitOptions(config=None, run_dir="/r", command="pseudolabel", gpus_per_node=2,
                                       array_size=4, job_name="pl", fit_args=["s.tar", "--output", "o"]))
    lines = text.splitlines()
    for line in ["#SBATCH --ntasks-per-node=2", "#SBATCH --gres=gpu:2", "#SBATCH --array=0-3",
                 "#SBATCH --signal=B:USR1@120", "#SBATCH --requeue", "#SBATCH --output=/r/slurm/%x-%A_%a.out",
                 "export VDA_SHARD_OVER_ARRAY=1  # the array's tasks share the inputs (io/distributed.py)"]:
        assert line in lines, line
    launch = next(line for line in lines if line.startswith("srun "))
    assert launch.endswith(f"{sys.executable} -m vda_lightning pseudolabel s.tar --output o --job-dir /r &")
    assert any(line.startswith("trap ") and "scontrol requeue" in line for line in lines)
    for bad in ({"config": "c.yaml"}, {"resume": True}, {"fit_args": ["x", "--job-dir", "d"]},
                {"python": "python3"}):
        with pytest.raises(ValueError):
            SubmitOptions(**{"config": None, "run_dir": "/r", "command": "infer", "fit_args": ["x"], **bad})
    assert main(["infer", "--run-dir", "/r", "--dry-run"]) == 2  # no inputs after `--`
    assert "give the infer arguments after `--`" in capsys.readouterr().err
