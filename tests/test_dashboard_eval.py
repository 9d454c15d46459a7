"""Evaluation reports and model artifacts in an offline wandb run, read back from its run log."""

import json

import numpy as np
import pytest

from vda_lightning.dashboards.artifacts import log_model_artifact
from vda_lightning.dashboards.eval_report import log_eval_results, sequence_rows, summary_rows
from vda_lightning.dashboards.offline_reader import read_offline_run

RESULTS = {
    "depth": {"kitti": {"abs_relative_difference": 0.11, "rmse_linear": 2.5, "delta1_acc": 0.9,
                        "per_scene": [[0.1, 2.0, 0.92], [0.12, 3.0, 0.88]], "scenes": ["drive_a", "drive_b"],
                        "frames": [10, 12], "sequences": 2, "missing_predictions": {"drive_b": ["f3.npy"]},
                        "settings": {"max_depth": 80.0}}},
    "tae": {"scannet": {"mean": 1.5, "per_scene": [1.4, 1.6], "scenes": ["s1", "s2"], "sequences": 2,
                        "missing_predictions": {}, "settings": {}}},
    "meta": {"label": "vits-test"},
}


@pytest.fixture
def offline_env(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    for var in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    return tmp_path


def _table(run, key):
    return json.loads((run.run_dir / "files" / run.summary[key]["path"]).read_text())


def test_eval_results_land_in_an_offline_run_of_their_own(offline_env):
    image = np.zeros((10, 16, 3), np.uint8)
    run_dir = log_eval_results(RESULTS, examples={"kitti_drive_a": image}, save_dir=str(offline_env / "eval"))
    run = read_offline_run(run_dir, wait=30)
    assert run.complete
    assert run.summary["eval/kitti/abs_rel"] == 0.11 and run.summary["eval/kitti/delta1"] == 0.9
    assert run.summary["eval/tae_scannet/tae"] == 1.5
    table = _table(run, "eval/results")
    assert table["columns"] == ["benchmark", "abs_rel", "rmse", "delta1", "tae", "sequences"]
    assert table["data"] == [["kitti", 0.11, 2.5, 0.9, None, 2], ["tae_scannet", None, None, None, 1.5, 2]]
    per_seq = _table(run, "eval/per_sequence")["data"]
    assert per_seq[1] == ["kitti", "drive_b", 0.12, 3.0, 0.88, None, 12, 1]  # one missing prediction counted
    assert per_seq[3] == ["tae_scannet", "s2", None, None, None, 1.6, None, 0]
    assert run.summary["eval/examples/kitti_drive_a"]["_type"] == "image-file"
    html = (run.run_dir / "files" / run.summary["eval/markdown"]["path"]).read_text()
    assert "KITTI AbsRel↓" in html and "vits-test" in html
    assert "git_commit" in run.config["vda_meta"]


def test_eval_rows_are_pure_and_disabled_mode_writes_nothing(offline_env, monkeypatch):
    assert len(summary_rows(RESULTS)) == 2 and len(sequence_rows(RESULTS)) == 4
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert log_eval_results(RESULTS, save_dir=str(offline_env / "none")) is None
    assert not (offline_env / "none").exists()


def test_exported_model_is_a_versioned_artifact(offline_env):
    import wandb

    model = offline_env / "vda_vitt.safetensors"
    model.write_bytes(b"weights")
    run = wandb.init(project="p", dir=str(offline_env), mode="offline")
    log_model_artifact(model, run, "vda-vitt", metadata={"step": 3})
    log_eval_results(RESULTS, run=run)  # into an existing (training) run
    run_dir = offline_env / "wandb" / f"offline-{run.dir.split('/offline-')[1].split('/')[0]}"
    run.finish()
    back = read_offline_run(run_dir, wait=30)
    assert [a for a in back.artifacts if a[1] == "model"] == [("vda-vitt",
                                                               "model")] and back.summary["eval/kitti/rmse"] == 2.5
    with pytest.raises(FileNotFoundError, match="missing.pth: no such model file"):
        log_model_artifact(offline_env / "missing.pth", run, "x")


def test_vda_eval_wandb_flag_logs_the_table(offline_env):
    """`vda-eval --wandb` on the synthetic benchmark: the offline run holds the same numbers as results.json."""
    from vda_lightning.evaluation.cli import main

    from tests.fakes.benchmark import make_tiny_benchmark

    root = make_tiny_benchmark(offline_env / "bench")
    out = offline_env / "eval" / "results.json"
    assert main(["--predictions", str(root / "predictions"), "--benchmark-root", str(root / "benchmark"),
                 "--benchmark", "kitti",
                 "--output", str(out), "--no-progress", "--wandb"]) == 0
    results = json.loads(out.read_text())
    runs = sorted((offline_env / "eval").rglob("offline-run-*"))
    assert len(runs) == 1
    run = read_offline_run(runs[0], wait=30)
    assert run.summary["eval/kitti/abs_rel"] == pytest.approx(results["depth"]["kitti"]["abs_relative_difference"])
    assert run.summary["eval/kitti/delta1"] == pytest.approx(results["depth"]["kitti"]["delta1_acc"])
