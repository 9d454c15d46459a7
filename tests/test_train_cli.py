"""vda-fit end to end (subprocesses): config validation, --print_config, SIGKILL + resume, checkpoints."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

FIT = [sys.executable, "-m", "vda_lightning.training.cli"]
ROOT = Path(__file__).resolve().parents[1]


def toy_config(root: Path, max_steps: int, every: int, **model) -> dict:
    return {
        "seed_everything": 0,
        "model": {"encoder": "vitt", "lr": 1e-3, "warmup_steps": 2, **model},
        "data": {
            "class_path": "vda_lightning.training.toy_data.ToyDataModule",
            "init_args": {"batch_size": 2, "num_frames": 4, "height": 28, "width": 28, "val_clips": 1},
        },
        "trainer": {
            "accelerator": "cpu", "devices": 1, "max_steps": max_steps, "deterministic": True,
            "default_root_dir": str(root), "limit_val_batches": 0, "enable_progress_bar": False,
            "log_every_n_steps": 1,
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                       "init_args": {"save_dir": str(root), "name": "logs"}},
        },
        "checkpoint": {"dirpath": "${trainer.default_root_dir}/checkpoints", "every_n_train_steps": every},
    }


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_fit(*args: str, kill_after: float = 300) -> subprocess.CompletedProcess:
    cmd = ["timeout", "-s", "KILL", str(kill_after), *FIT, *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


def head_weights(ckpt: Path) -> dict[str, torch.Tensor]:
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    return {k: v for k, v in state["state_dict"].items() if k.startswith("model.head.")}, state


def logged_losses(root: Path) -> dict[int, float]:
    out = {}
    for path in sorted((root / "logs").glob("version_*/metrics.csv")):
        with open(path) as f:
            for row in csv.DictReader(f):
                if row.get("train/total"):
                    out[int(row["step"])] = float(row["train/total"])
    return out


def fit_in_process(capsys, *args: str) -> tuple[int, str, str]:
    """vda-fit's parsing stage in this process (no subprocess start-up): (exit code, stdout, stderr)."""
    from vda_lightning.training.cli import main

    argv = sys.argv
    sys.argv = ["vda-fit", *args]  # LightningCLI warns when given args differ from sys.argv
    try:
        with pytest.raises(SystemExit) as exit_info:
            main(list(args))
    finally:
        sys.argv = argv
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def test_unknown_key_and_wrong_type_fail_before_any_work(tmp_path, capsys):
    cfg = toy_config(tmp_path / "run", 2, 1)
    cfg["model"]["learning_rate"] = 1e-4  # unknown key
    code, _, err = fit_in_process(capsys, "--config", str(write_config(tmp_path / "a.yaml", cfg)))
    assert code != 0 and "learning_rate" in err
    cfg = toy_config(tmp_path / "run", 2, 1)
    cfg["model"]["warmup_steps"] = "many"  # wrong type
    code, _, err = fit_in_process(capsys, "--config", str(write_config(tmp_path / "b.yaml", cfg)))
    assert code != 0 and "model.warmup_steps" in err
    good = write_config(tmp_path / "good.yaml", toy_config(tmp_path / "run", 2, 1))
    code, _, err = fit_in_process(capsys, "--config", str(good), "--trainer.max_stepz", "3")
    assert code != 0 and "max_stepz" in err
    assert not (tmp_path / "run").exists()  # nothing was built or written


def test_print_config_resolves_interpolation(tmp_path, capsys):
    cfg = toy_config(tmp_path / "run", 2, 1)
    code, out, _ = fit_in_process(capsys, "--config", str(write_config(tmp_path / "c.yaml", cfg)), "--print_config")
    assert code == 0
    printed = yaml.safe_load(out)
    assert printed["checkpoint"]["dirpath"] == f"{tmp_path / 'run'}/checkpoints"
    assert printed["model"]["lr"] == 1e-3 and printed["checkpoint"]["save_last"] is True
    assert not (tmp_path / "run").exists()


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    steps = 8
    # Uninterrupted reference run.
    ref_root = tmp_path / "ref"
    res = run_fit("--config", str(write_config(tmp_path / "ref.yaml", toy_config(ref_root, steps, 2))))
    assert res.returncode == 0, res.stderr[-3000:]
    ref_head, ref_state = head_weights(ref_root / "checkpoints" / "last.ckpt")
    assert ref_state["global_step"] == steps

    # Same run, killed with SIGKILL once the step-4 checkpoint exists, then resumed with --ckpt_path last.
    root = tmp_path / "killed"
    config = write_config(tmp_path / "killed.yaml", toy_config(root, steps, 2))
    proc = subprocess.Popen([*FIT, "--config", str(config)], cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (root / "checkpoints" / "epoch=0-step=4.ckpt").exists():
        if proc.poll() is not None or time.time() > deadline:
            os.killpg(proc.pid, signal.SIGKILL) if proc.poll() is None else None
            pytest.fail("the run ended (or hung) before its step-4 checkpoint")
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # its own session: only this run's processes
    assert proc.wait() == -signal.SIGKILL
    killed_at, _ = head_weights(root / "checkpoints" / "last.ckpt")
    assert torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] < steps

    res = run_fit("--config", str(config), "--ckpt_path", "last")
    assert res.returncode == 0, res.stderr[-3000:]
    head, state = head_weights(root / "checkpoints" / "last.ckpt")
    assert state["global_step"] == steps
    # Deterministic CPU run on a step-indexed source: the very same final head weights.
    assert head.keys() == ref_head.keys()
    for key in ref_head:
        assert torch.equal(head[key], ref_head[key]), key
    # No jump in the loss curve: each step logged after the resume equals the reference run's loss at that step.
    ref_losses, resumed = logged_losses(ref_root), logged_losses(root)
    after = [s for s in resumed if s >= 4]
    assert after and all(resumed[s] == pytest.approx(ref_losses[s], rel=1e-6) for s in after)
