"""The quick start, shortened, with the dashboards on: offline wandb (no credentials, no network) read back from the
run log, and the same run with WANDB_MODE=disabled, whose CSV fallback must hold the same scalars."""

import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from vda_lightning.dashboards.offline_reader import latest_offline_run, read_offline_run

ROOT = Path(__file__).resolve().parents[1]
STEPS = 2
DASHBOARD = {
    "trainer": {
        "logger": {"class_path": "vda_lightning.dashboards.vda_logger",
                   "init_args": {"project": "vda-test", "name": "quick", "tags": ["test"],
                                 "save_dir": None}},  # set per run
        "callbacks": [{"class_path": "vda_lightning.dashboards.TrainingDashboard"},
                      {"class_path": "vda_lightning.dashboards.DepthPictures",
                       "init_args": {"num_clips": 1, "every_n_validations": 1, "max_frames": 6}}],
    }
}
# what a depth researcher must find on the dashboard (validation keys: val/<dataset>/<metric>)
TRAIN_KEYS = {"train/loss", "train/spatial", "train/tgm", "train/total", "train/lr", "train/grad_norm",
              "train/skipped_nonfinite_loss", "train/skipped_nonfinite_grad", "train/clips_per_s",
              "train/frames_per_s", "train/clips_per_s_wall", "train/frames_per_s_wall", "train/data_wait_fraction"}
VAL_METRICS = {"abs_rel", "delta1", "tae"}
WANDB_ONLY = {"_step", "_runtime", "_timestamp", "trainer/global_step"}


def _no_network_prefix() -> list[str]:
    """`unshare -rn` runs the command in a network namespace with no interface up: any connect fails at once."""
    ok = shutil.which("unshare") and subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0
    return ["unshare", "-rn"] if ok else []


def run_quickstart(tmp: Path, wandb_mode: str | None, prefix: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    run_root = tmp / f"run_{wandb_mode or 'auto'}"
    override = tmp / f"dash_{wandb_mode or 'auto'}.yaml"
    config = {"trainer": dict(DASHBOARD["trainer"])}
    config["trainer"]["logger"] = {**DASHBOARD["trainer"]["logger"]}
    config["trainer"]["logger"]["init_args"] = {**DASHBOARD["trainer"]["logger"]["init_args"],
                                                "save_dir": str(run_root)}
    override.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_") and k != "NETRC"}
    env.update(HOME=str(tmp / "home"), WANDB_DIR=str(run_root), WANDB_CONFIG_DIR=str(tmp / "wbconfig"),
               WANDB_CACHE_DIR=str(tmp / "wbcache"), WANDB_DATA_DIR=str(tmp / "wbdata"))
    if wandb_mode:
        env["WANDB_MODE"] = wandb_mode
    data = "--data.init_args."
    cmd = [*prefix, "timeout", "-s", "KILL", "300", sys.executable, "-m", "vda_lightning.training.cli",
           "--config", "conf/quickstart.yaml", "--config", str(override),
           "--validate_before_fit=false", f"--trainer.default_root_dir={run_root}", f"--trainer.max_steps={STEPS}",
           "--trainer.val_check_interval=2", "--trainer.log_every_n_steps=1", "--trainer.limit_val_batches=1",
           "--trainer.enable_progress_bar=false", "--checkpoint.every_n_train_steps=100",
           f"--checkpoint.dirpath={run_root / 'checkpoints'}",
           f"{data}synthetic.dir={tmp / 'synthetic'}", f"{data}synthetic.train_clips=4",
           f"{data}synthetic.val_clips=1", f"{data}epoch_length={STEPS}"]
    start = time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    return res, time.perf_counter() - start


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("quickstart")
    prefix = _no_network_prefix()
    offline, offline_s = run_quickstart(tmp, None, prefix)  # WANDB_MODE unset + no credentials → offline
    assert offline.returncode == 0, offline.stderr[-3000:]
    disabled, _ = run_quickstart(tmp, "disabled", prefix)
    assert disabled.returncode == 0, disabled.stderr[-3000:]
    return {"tmp": tmp, "offline_s": offline_s, "offline": offline, "prefix": prefix}


def _csv_rows(tmp: Path) -> list[dict]:
    [metrics] = list((tmp / "run_disabled").glob("vda-test/quick/metrics.csv"))
    with open(metrics) as f:
        return list(csv.DictReader(f))


def test_offline_run_has_losses_metrics_throughput_and_pictures(runs):
    run = read_offline_run(latest_offline_run(runs["tmp"] / "run_auto" / "wandb"), wait=30)
    assert run.complete
    keys = run.scalar_keys()
    assert TRAIN_KEYS <= keys, TRAIN_KEYS - keys
    val = {k for k in keys if k.startswith("val/")}
    assert {k.rsplit("/", 1)[1] for k in val} >= VAL_METRICS
    losses = [row["train/total"] for row in run.history if "train/total" in row]
    assert len(losses) == STEPS and all(v > 0 for v in losses)
    assert 0.0 <= run.summary["train/data_wait_fraction"] < 1.0 and run.summary["train/frames_per_s"] > 0
    images = [k for k, v in run.summary.items() if isinstance(v, dict) and v.get("_type") == "image-file"]
    videos = [k for k, v in run.summary.items() if isinstance(v, dict) and v.get("_type") == "video-file"]
    assert any(k.endswith("/compare") for k in images) and any(k.endswith("/profile") for k in images)
    assert videos
    video = run.run_dir / "files" / run.summary[videos[0]]["path"]
    assert video.stat().st_size > 0 and video.read_bytes()[4:8] == b"ftyp"  # an mp4 container
    # the run identifies its code and config
    assert len(run.config["vda_meta"]["git_commit"]) >= 7 and run.config["vda_meta"]["packages"]["torch"]
    assert run.config["cli"]["trainer"]["max_steps"] == STEPS


def test_no_credentials_no_network_does_not_wait(runs):
    assert runs["prefix"] == ["unshare", "-rn"], "this machine should offer an empty network namespace"
    assert runs["offline"].returncode == 0
    run_dir = latest_offline_run(runs["tmp"] / "run_auto" / "wandb")
    assert read_offline_run(run_dir, wait=30).complete  # kept whole for a later `wandb sync`
    debug = (run_dir / "logs" / "debug-internal.log").read_text()
    assert "retry" not in debug.lower() and "api.wandb.ai" not in debug


def test_disabled_writes_the_same_scalars_to_csv(runs):
    tmp = runs["tmp"]
    assert not list((tmp / "run_disabled").glob("wandb/*run-*"))  # wandb wrote nothing
    rows = _csv_rows(tmp)
    csv_keys = {k for row in rows for k, v in row.items() if v not in ("", None)} - {"step", "epoch"}
    wandb_run = read_offline_run(latest_offline_run(tmp / "run_auto" / "wandb"), wait=30)
    wandb_keys = wandb_run.scalar_keys() - WANDB_ONLY - {"epoch"}
    assert csv_keys == wandb_keys
    # same seed, same data: the same losses at the same steps
    csv_losses = {int(r["step"]): float(r["train/total"]) for r in rows if r.get("train/total")}
    wb_losses = {row["trainer/global_step"]: row["train/total"] for row in wandb_run.history if "train/total" in row}
    assert csv_losses.keys() == wb_losses.keys()
    for step in csv_losses:
        assert csv_losses[step] == pytest.approx(wb_losses[step], rel=1e-5)
    media = {p.suffix for p in (tmp / "run_disabled" / "vda-test" / "quick" / "media").iterdir()}
    assert media == {".png", ".mp4"}


def test_the_quick_start_is_quiet_and_ends_with_the_table(runs):
    """Notices a user cannot act on are silenced (training/quiet.py, the wandb logger); the last lines on stdout are
    the final validation table (the run's other stdout/stderr output comes before it)."""
    res = runs["offline"]
    for noise in ("LeafSpec", "module(s) in eval mode at the start", "anonymous setting", "litlogger"):
        assert noise not in res.stderr and noise not in res.stdout, noise
    lines = [line for line in res.stdout.splitlines() if line.strip()]
    header = max(i for i, line in enumerate(lines) if line.split()[:2] == ["dataset", "metric"])
    tail = lines[header + 1:]
    assert tail and all(line.startswith(("synthetic", "---", "(written to ")) for line in tail), tail
    assert any(line.split()[1] == "abs_rel" for line in tail if line.startswith("synthetic"))
