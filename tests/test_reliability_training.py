"""vda fit faults of the fault-injection pass: SIGTERM (and SIGUSR1 without the requeue callback) saves a checkpoint
at the next step boundary and exits non-zero; a truncated last.ckpt, a pickle payload, a full disk and values that
cannot train are one line each; staging files a killed run left are removed when the run starts again.

Run folders (issue 24): a metric recipe resumed into a folder given on the command line leaves the recipe's own
folder alone (its checkpoint folder follows the final run folder); Ctrl-C during the first validation leaves a
folder that a fresh run may start in again, and `--ckpt_path last` there is one line."""
from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch import Callback

ROOT = Path(__file__).resolve().parents[1]
FIT = [sys.executable, "-m", "vda_lightning", "fit"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    from vda_lightning.data.cli import main as vda_shard

    out = tmp_path_factory.mktemp("rel_train_shards")
    assert vda_shard(["synthetic", "--out", str(out), "--train-clips", "4", "--val-clips", "1", "--clip-len", "4",
                      "--height", "28", "--width", "42", "--clips-per-shard", "2"]) == 0
    return out


def recipe(shards: Path, run_dir: Path, max_steps: int, every: int, marker: Path | None = None, **data) -> dict:
    callbacks = [] if marker is None else [{"class_path": "tests.fakes.step_marker.StepMarker",
                                            "init_args": {"path": str(marker)}}]
    return {
        "seed_everything": 0,
        "model": {"encoder": "vitt", "lr": 1e-3, "warmup_steps": 2},
        "data": {"class_path": "vda_lightning.data.VideoDepthDataModule",
                 "init_args": {"train_shards": str(shards / "train-*.tar"), "clip_len": 2, "crop_size": [28, 28],
                               "batch_size": 1, "num_workers": 0, "epoch_length": 1000, "shuffle_buffer": 1,
                               **data}},
        "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": max_steps, "limit_val_batches": 0,
                    "enable_progress_bar": False, "enable_model_summary": False, "logger": False,
                    "default_root_dir": str(run_dir), "callbacks": callbacks},
        "checkpoint": {"dirpath": str(run_dir / "checkpoints"), "every_n_train_steps": every},
    }


def config(tmp_path: Path, cfg: dict, name: str = "fit.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))


def fit(*args, preexec_fn=None, timeout=300, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(["timeout", "-s", "KILL", str(timeout), *FIT, *args], cwd=cwd, env=env(),
                          capture_output=True, text=True, preexec_fn=preexec_fn)


def error_lines(res: subprocess.CompletedProcess) -> list[str]:
    return [line for line in res.stderr.splitlines() if "error:" in line]


def step_of(ckpt: Path) -> int:
    return int(torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"])


def signal_mid_run(cfg_path: str, marker: Path, sig: int, after_step: int = 3) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([*FIT, "--config", cfg_path], cwd=ROOT, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if marker.exists() and marker.read_text().strip() and int(marker.read_text()) >= after_step:
            break
        if proc.poll() is not None:
            pytest.fail(f"vda fit ended before the signal: {proc.stderr.read()[-3000:]}")
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("training never reached the step")
    seen = int(marker.read_text())
    proc.send_signal(sig)
    return proc, seen


def test_sigterm_saves_at_the_next_step_exits_143_and_resumes(shards, tmp_path):
    run = tmp_path / "run"
    marker = tmp_path / "step"
    stale = [run / "checkpoints" / ".epoch=0-step=3.ckpt.999999999-abc.tmp",  # a killed save's staging files
             run / "checkpoints" / ".last.ckpt.k2j3h4.tmp"]
    stale[0].parent.mkdir(parents=True)
    for path in stale:
        path.write_bytes(b"\0" * 1000)
    cfg = config(tmp_path, recipe(shards, run, max_steps=500, every=2, marker=marker))
    proc, seen = signal_mid_run(cfg, marker, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    last = run / "checkpoints" / "last.ckpt"
    saved = step_of(last)
    assert saved >= seen and f"SIGTERM: saved {last} at step {saved}; resume with --ckpt_path last" in err
    assert not any(p.exists() for p in stale), "staging files of the killed run were not removed"

    periodic = sorted((run / "checkpoints").glob("epoch=*.ckpt"))
    assert periodic and step_of(periodic[-1]) <= saved
    # A truncated last.ckpt: `--ckpt_path last` names it and resumes from the newest valid checkpoint instead.
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])
    target = step_of(periodic[-1]) + 2
    res = fit("--config", cfg, "--ckpt_path", "last", "--trainer.max_steps", str(target))
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"{last} is truncated or not a zip archive; resuming from the newest valid checkpoint " \
           f"{periodic[-1]}" in res.stderr
    assert step_of(last) == target
    # All checkpoints unusable: one line, exit 2.
    for path in (run / "checkpoints").glob("*.ckpt"):
        path.write_bytes(path.read_bytes()[:100])
    res = fit("--config", cfg, "--ckpt_path", "last", "--trainer.max_steps", str(target + 2))
    errors = [line for line in res.stderr.splitlines() if "error:" in line]
    assert res.returncode == 2 and len(errors) == 1 and "holds no other valid checkpoint" in errors[0]
    assert "Traceback" not in res.stderr


def test_sigterm_after_the_step_check_is_saved_at_the_next_step(shards, tmp_path):
    """A SIGTERM that lands after `SaveOnSignal` looked at step 3 and before Lightning's loop looks: the gate keeps
    it from Lightning (which used to end the run there with status 0 and no checkpoint) and step 4 saves it."""
    run = tmp_path / "run"
    cfg = recipe(shards, run, max_steps=500, every=1000)
    cfg["trainer"]["callbacks"] = [{"class_path": "tests.fakes.signal_self.SignalSelf",
                                    "init_args": {"when": "after_step_check", "step": 3}}]
    res = fit("--config", config(tmp_path, cfg), timeout=240)
    last = run / "checkpoints" / "last.ckpt"
    assert res.returncode == 143, res.stderr[-3000:]
    assert f"SIGTERM: saved {last} at step 4; resume with --ckpt_path last" in res.stderr
    assert step_of(last) == 4


def test_sigterm_during_validation_exits_143_without_a_new_checkpoint(shards, tmp_path):
    """In-loop validation is not a step boundary: Lightning stops the run, `vda fit` says so and exits 143 (its
    `SIGTERMException` is a `SystemExit` of status 0, which the run once passed on as a clean exit)."""
    run = tmp_path / "run"
    cfg = recipe(shards, run, max_steps=500, every=1000, val_shards=str(shards / "val-*.tar"))
    cfg["trainer"].update(limit_val_batches=2, val_check_interval=2, num_sanity_val_steps=0)
    cfg["trainer"]["callbacks"] = [{"class_path": "tests.fakes.signal_self.SignalSelf",
                                    "init_args": {"when": "validation", "step": 2}}]
    res = fit("--config", config(tmp_path, cfg), timeout=240)
    errors = error_lines(res)
    assert res.returncode == 143, res.stderr[-3000:]
    assert len(errors) == 1 and "SIGTERM while no training step ran" in errors[0], res.stderr[-3000:]
    assert not (run / "checkpoints" / "last.ckpt").exists()


def test_sigusr1_without_the_requeue_callback_saves_and_exits_138(shards, tmp_path):
    run = tmp_path / "run"
    marker = tmp_path / "step"
    cfg = config(tmp_path, recipe(shards, run, max_steps=500, every=1000, marker=marker))
    proc, seen = signal_mid_run(cfg, marker, signal.SIGUSR1, after_step=2)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 138, err[-3000:]
    last = run / "checkpoints" / "last.ckpt"
    assert step_of(last) >= seen and "SIGUSR1: saved" in err


def test_a_pickle_payload_to_ckpt_path_is_one_line_and_never_runs(shards, tmp_path):
    marker = tmp_path / "PWNED"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "x": Payload()}, evil)
    cfg = config(tmp_path, recipe(shards, tmp_path / "run", max_steps=2, every=1000))
    res = fit("--config", cfg, "--ckpt_path", str(evil))
    errors = [line for line in res.stderr.splitlines() if "error:" in line]
    assert res.returncode == 2 and len(errors) == 1, res.stderr[-3000:]
    assert str(evil) in errors[0] and "refused to load" in errors[0] and "Traceback" not in res.stderr
    assert not marker.exists()


def test_a_full_disk_is_one_line_naming_the_file(shards, tmp_path):
    run = tmp_path / "run"
    cfg = config(tmp_path, recipe(shards, run, max_steps=3, every=1))

    def small_files():  # writes past 1 MB fail (EFBIG): a disk that fills up while the checkpoint is written
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    res = fit("--config", cfg, preexec_fn=small_files)
    errors = [line for line in res.stderr.splitlines() if "error:" in line]
    assert res.returncode == 2 and len(errors) == 1, res.stderr[-3000:]
    assert f"{run / 'checkpoints'}/" in errors[0] and "cannot write the checkpoint (File too large)" in errors[0]
    assert "Traceback" not in res.stderr
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.endswith(".tmp")]  # no staging file left


@pytest.mark.parametrize("where, key, value, says", [
    ("data", "clip_len", 0, "data: clip_len 0 must be >= 1"),
    ("data", "crop_size", 50, "data: crop_size [50, 50] must be positive multiples of 14"),
    ("data", "batch_size", 0, "batch_size 0 and images.batch_size 0"),
    ("model", "encoder", "vitx", "unknown encoder 'vitx'"),
])
def test_values_that_cannot_train_are_one_line_at_start_up(shards, tmp_path, capsys, where, key, value, says):
    from vda_lightning.training.cli import main

    cfg = recipe(shards, tmp_path / "run", max_steps=2, every=1000)
    (cfg["data"]["init_args"] if where == "data" else cfg["model"])[key] = value
    argv, sys.argv = sys.argv, ["vda-fit", "--config", config(tmp_path, cfg)]
    try:
        with pytest.raises(SystemExit) as e:
            main(sys.argv[1:])
    finally:
        sys.argv = argv
    err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert e.value.code == 2 and len(err) == 1 and says in err[0], err
    assert not (tmp_path / "run").exists()  # nothing was read, built or written


# -- run folders (issue 24) -------------------------------------------------------------------------------------------
def cpu_metric(shards: Path) -> list[str]:
    """conf/paper/metric_base.yaml + metric_vits.yaml shrunk to a few CPU steps of vitt on the synthetic shards; the
    run folder stays the recipe's own (`runs/metric_vits`, relative to the working folder)."""
    paper = ROOT / "conf" / "paper"
    return ["--config", str(paper / "metric_base.yaml"), "--config", str(paper / "metric_vits.yaml"),
            "--model.encoder", "vitt", "--model.init_checkpoint", "null", "--model.gradient_checkpointing", "false",
            "--data.init_args.train_shards", str(shards / "train-*.tar"), "--data.init_args.val_shards", "null",
            "--data.init_args.clip_len", "2", "--data.init_args.crop_size", "28", "--data.init_args.batch_size", "1",
            "--data.init_args.num_workers", "0", "--data.init_args.epoch_length", "5",
            "--data.init_args.shuffle_buffer", "1", "--trainer.accelerator", "cpu", "--trainer.devices", "1",
            "--trainer.strategy", "auto", "--trainer.precision", "32", "--trainer.logger", "false",
            "--trainer.enable_progress_bar", "false", "--checkpoint.every_n_train_steps", "2"]


def test_a_metric_recipe_resumed_into_a_new_folder_leaves_the_recipes_folder_alone(shards, tmp_path):
    """The metric recipes write `checkpoint.dirpath: ${trainer.default_root_dir}/checkpoints`; it was resolved from
    the recipe's folder before `--trainer.default_root_dir` applied, so resuming into a new folder overwrote the
    recipe folder's last.ckpt and deleted its periodic checkpoint."""
    first = fit(*cpu_metric(shards), "--trainer.max_steps", "2", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    recipe_folder = tmp_path / "runs" / "metric_vits" / "checkpoints"
    before = {p.name: p.read_bytes() for p in recipe_folder.iterdir()}
    assert set(before) == {"last.ckpt", "epoch=0-step=2.ckpt"}

    new = tmp_path / "elsewhere"
    res = fit(*cpu_metric(shards), "--trainer.max_steps", "4", "--trainer.default_root_dir", str(new),
              "--ckpt_path", str(recipe_folder / "last.ckpt"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert {p.name: p.read_bytes() for p in recipe_folder.iterdir()} == before  # untouched
    assert step_of(new / "checkpoints" / "last.ckpt") == 4
    assert yaml.safe_load((new / "config.yaml").read_text())["checkpoint"]["dirpath"] == str(new / "checkpoints")


class HoldInValidation(Callback):
    """Test callback: writes `path` when the first validation starts, then holds it there (until the test's Ctrl-C),
    so that the signal lands in the validation whatever the machine's load."""

    def __init__(self, path: str):
        self.path = Path(path)

    def on_validation_start(self, trainer, pl_module) -> None:
        self.path.write_text("validating")
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            time.sleep(0.05)


def test_ctrl_c_in_the_first_validation_leaves_a_folder_a_fresh_run_may_start_in(shards, tmp_path):
    run = tmp_path / "run"
    marker = tmp_path / "validating"
    cfg = recipe(shards, run, max_steps=2, every=1, val_shards=str(shards / "val-*.tar"),
                 val={"size": 28, "num_workers": 0})
    cfg["trainer"].update(limit_val_batches=1, num_sanity_val_steps=1)
    cfg["trainer"]["callbacks"] = [{"class_path": "tests.test_reliability_training.HoldInValidation",
                                    "init_args": {"path": str(marker)}}]
    proc = subprocess.Popen([*FIT, "--config", config(tmp_path, cfg, "hold.yaml")], cwd=ROOT, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not marker.exists():  # a state, not a time: the sanity validation has started
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"vda fit never reached its first validation: {proc.communicate()[1][-3000:]}")
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=240)
    errors = [line for line in err.splitlines() if "error:" in line]
    assert proc.returncode == 130 and len(errors) == 1 and "interrupted (Ctrl-C)" in errors[0], err[-3000:]
    assert "Traceback" not in err
    assert (run / "config.yaml").is_file() and not list(run.rglob("*.ckpt"))  # what an interrupted start leaves

    cfg["trainer"]["callbacks"] = []
    plain = config(tmp_path, cfg, "plain.yaml")
    res = fit("--config", plain, "--ckpt_path", "last")  # nothing to resume: one line that says what to do
    assert res.returncode == 2 and len(error_lines(res)) == 1, res.stderr[-3000:]
    assert f"--ckpt_path last: {run / 'checkpoints'} holds no checkpoint" in error_lines(res)[0]
    assert "start it afresh without --ckpt_path" in error_lines(res)[0] and "Traceback" not in res.stderr
    res = fit("--config", plain)  # a fresh run starts in the folder again
    assert res.returncode == 0, res.stderr[-3000:]
    assert step_of(run / "checkpoints" / "last.ckpt") == 2  # (now it holds a run: test_train_validation's refusal)
