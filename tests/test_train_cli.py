"""vda-fit end to end (subprocesses): config validation, --print_config, SIGKILL + resume, checkpoints."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from tests.fakes.recorder import read_step_keys
from tests.helpers.recipes import (
    DDP_EVERY,
    DDP_STEPS,
    FIT,
    ROOT,
    fit_env,
    head_weights,
    logged_losses,
    run_fit,
    tiny_recipe,
    write_config,
)


def toy_config(root: Path, max_steps: int, every: int, **model) -> dict:
    """The tiny recipe on a few tiny synthetic scenes of its own (`synthetic:` next to the run folder)."""
    cfg = tiny_recipe(Path("unused"), root, max_steps, every, workers=0, **model)
    cfg["data"]["init_args"]["train_shards"] = None
    cfg["data"]["init_args"].update(val={"size": 0, "num_workers": 0}, synthetic={
        "dir": str(root.parent / "synthetic"), "train_clips": 4, "val_clips": 1, "height": 28, "width": 42})
    return cfg


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
    cfg["checkpoint"]["dirpath"] = "${trainer.default_root_dir}/weights"
    code, out, _ = fit_in_process(capsys, "--config", str(write_config(tmp_path / "c.yaml", cfg)), "--print_config")
    assert code == 0
    printed = yaml.safe_load(out)
    assert printed["checkpoint"]["dirpath"] == f"{tmp_path / 'run'}/weights"
    assert printed["model"]["class_path"] == "vda_lightning.training.RelativeDepthTask"  # the default task
    assert printed["model"]["init_args"]["lr"] == 1e-3 and printed["checkpoint"]["save_last"] is True
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("order, expected", [
    ("root after the recipes", "{new}/checkpoints"),
    ("root before the recipes", "runs/metric_vits/checkpoints"),   # the recipes' own root comes later and wins
    ("explicit dirpath last", "{new}/ckpts"),
])
def test_the_metric_recipes_checkpoint_folder_follows_the_final_run_folder(tmp_path, capsys, order, expected):
    """conf/paper/metric_*.yaml: `checkpoint.dirpath: ${trainer.default_root_dir}/checkpoints` was resolved from the
    recipe's own run folder, before a command-line --trainer.default_root_dir (issue 24)."""
    paper = Path(__file__).resolve().parents[1] / "conf" / "paper"
    recipes = ["--config", str(paper / "metric_base.yaml"), "--config", str(paper / "metric_vits.yaml")]
    root = ["--trainer.default_root_dir", str(tmp_path / "new")]
    args = {"root after the recipes": recipes + root, "root before the recipes": root + recipes,
            "explicit dirpath last": recipes + root + [f"--checkpoint.dirpath={tmp_path / 'new'}/ckpts"]}[order]
    code, out, _ = fit_in_process(capsys, *args, "--print_config")
    assert code == 0
    assert yaml.safe_load(out)["checkpoint"]["dirpath"] == expected.format(new=tmp_path / "new")


def _uninterrupted(tmp_path: Path, shards: Path, steps: int) -> dict:
    root = tmp_path / "ref"
    res = run_fit("--config", str(write_config(tmp_path / "ref.yaml", tiny_recipe(shards, root, steps, 3))),
                  step_keys=tmp_path / "ref.keys")
    assert res.returncode == 0, res.stderr[-3000:]
    head, state = head_weights(root / "checkpoints" / "last.ckpt")
    assert state["global_step"] == steps
    return {"head": head, "keys": [read_step_keys(str(tmp_path / "ref.keys"), 0)], "losses": logged_losses(root)}


@pytest.mark.parametrize("devices", [1, 2], ids=["1 process", "2 gloo ranks"])
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path, synthetic_shards, request, devices):
    """Real shards through VideoDepthDataModule, 2 dataloader workers per rank, 5-step epochs, a checkpoint every
    3 steps: SIGKILL once a checkpoint exists, `--ckpt_path last`; then the same final head weights (bit for bit)
    and, after the resume, the same samples at every step as the uninterrupted run (for 2 ranks: the session's
    `ddp_reference`, which the SLURM-requeue test compares against too)."""
    steps = DDP_STEPS if devices == 2 else 9  # multiples of the checkpoint interval: last.ckpt is the end state
    ref = request.getfixturevalue("ddp_reference") if devices == 2 else _uninterrupted(tmp_path, synthetic_shards,
                                                                                        steps)

    # The same run, killed with SIGKILL once a periodic checkpoint exists, then resumed with --ckpt_path last.
    root = tmp_path / "killed"
    config = write_config(tmp_path / "killed.yaml", tiny_recipe(synthetic_shards, root, steps, DDP_EVERY,
                                                                devices=devices))
    proc = subprocess.Popen([*FIT, "--config", str(config)], cwd=ROOT, start_new_session=True,
                            env=fit_env(tmp_path / "killed.keys"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (root / "checkpoints" / "last.ckpt").exists():
        if proc.poll() is not None or time.time() > deadline:
            os.killpg(proc.pid, signal.SIGKILL) if proc.poll() is None else None
            pytest.fail("the run ended (or hung) before its first checkpoint")
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # its own session: only this run's processes (ranks, workers)
    assert proc.wait() == -signal.SIGKILL
    killed_at = torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert 3 <= killed_at < steps

    res = run_fit("--config", str(config), "--ckpt_path", "last", step_keys=tmp_path / "resumed.keys")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "data resume: epoch" in res.stderr  # the stream continued (or began the next epoch), never restarted
    head, state = head_weights(root / "checkpoints" / "last.ckpt")
    assert state["global_step"] == steps
    # Deterministic CPU run on the real data path: the very same final head weights.
    assert head.keys() == ref["head"].keys()
    for key in ref["head"]:
        assert torch.equal(head[key], ref["head"][key]), key
    # Every step after the resume trained on the samples the uninterrupted run used at that step, on every rank.
    for rank in range(devices):
        resumed = read_step_keys(str(tmp_path / "resumed.keys"), rank)
        assert sorted(resumed) == list(range(killed_at, steps))
        assert resumed == {s: ref["keys"][rank][s] for s in resumed}, f"rank {rank}"
    if devices == 2:  # the ranks read their own samples, not the same ones
        assert ref["keys"][0] != ref["keys"][1]
    # No jump in the loss curve: each step logged after the resume equals the reference run's loss at that step.
    resumed_losses = logged_losses(root)
    after = [s for s in resumed_losses if s >= killed_at]
    assert after and all(resumed_losses[s] == ref["losses"][s] for s in after)
    print(f"{devices} rank(s): killed at step {killed_at}, resumed to {steps}: {len(ref['head'])} head tensors "
          f"bit-identical, sample keys equal at {len(resumed)} steps per rank")
