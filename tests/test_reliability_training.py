"""vda fit faults of the fault-injection pass: SIGTERM (and SIGUSR1 without the requeue callback) saves a checkpoint
at the next step boundary and exits non-zero; a truncated last.ckpt, a pickle payload, a full disk and values that
cannot train are one line each; staging files a killed run left are removed when the run starts again."""
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


def fit(*args, preexec_fn=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(["timeout", "-s", "KILL", str(timeout), *FIT, *args], cwd=ROOT, env=env(),
                          capture_output=True, text=True, preexec_fn=preexec_fn)


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
    ("data", "batch_size", 0, "batch_size 0 and image_batch_size 0"),
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
