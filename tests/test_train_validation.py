"""In-loop validation is the benchmark protocol; bad validation data never stops a run; one run folder per
experiment; config problems are one line.

Parity: the mini benchmark's Bonn and ScanNet sequences (plus one Bonn sequence longer than a 32-frame window,
made by listing frames of two scenes) written as validation shards by `vda-shard benchmark`, validated by vda-fit
with a fixed random vitt model, give the AbsRel, δ1 and ScanNet TAE that `vda-eval --checkpoint` gives on the
same sequences, to 1e-6 relative — and scored again with one 80 m cap for every dataset they do not.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers.recipes import tiny_recipe, write_config

INPUT_SIZE = 28  # small inference input: the protocol, not the resolution, is under test


def fit_in_process(capsys, *args: str):
    """vda-fit in this process: (exit code, stdout, stderr, the CLI object or None)."""
    from vda_lightning.training.cli import run

    loggers = [logging.getLogger()] + [v for v in logging.Logger.manager.loggerDict.values()
                                       if isinstance(v, logging.Logger)]
    for logger in loggers:  # handlers made during an earlier test still hold that test's (closed) stderr
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and getattr(handler.stream, "closed", False):
                handler.stream = sys.stderr  # (setStream would flush the closed one)
    argv = sys.argv
    sys.argv = ["vda-fit", *args]  # LightningCLI warns when given args differ from sys.argv
    code, cli = 0, None
    try:
        cli = run(list(args))
    except SystemExit as e:
        code = e.code
    finally:
        sys.argv = argv
    out = capsys.readouterr()
    return code, out.out, out.err, cli


@pytest.fixture(scope="module")
def mini_benchmark(golden_dir, tmp_path_factory):
    """Bonn and ScanNet of the mini benchmark in a benchmark root, Bonn with a third, 34-frame sequence."""
    root = tmp_path_factory.mktemp("bench") / "benchmark"
    source = golden_dir / "mini_benchmark" / "benchmark"
    for ds in ("bonn", "scannet"):
        (root / ds).mkdir(parents=True)
        for p in (source / ds).iterdir():
            if p.is_dir():
                os.symlink(p, root / ds / p.name)
        doc = json.loads((source / ds / f"{ds}_video.json").read_text())
        if ds == "bonn":
            seqs = {k: v for item in doc[ds] for k, v in item.items()}
            doc[ds].append({"scene02": seqs["scene00"] + seqs["scene01"] + seqs["scene00"][:2]})
        (root / ds / f"{ds}_video.json").write_text(json.dumps(doc))
    return root


@pytest.fixture(scope="module")
def parity(mini_benchmark, synthetic_shards, tmp_path_factory):
    from vda_lightning import save_model
    from vda_lightning.data.cli import main as vda_shard
    from vda_lightning.evaluation.cli import main as vda_eval
    from vda_lightning.models import build_video_model

    tmp = tmp_path_factory.mktemp("parity")
    for ds in ("bonn", "scannet"):
        assert vda_shard(["benchmark", str(mini_benchmark / ds / f"{ds}_video.json"), "--out", str(tmp / "val"),
                          "--prefix", f"val-{ds}", "--clip-len", "0", "--no-progress"]) == 0
    torch.manual_seed(0)
    model = save_model(build_video_model("vitt"), tmp / "model.safetensors")
    assert vda_eval(["--benchmark", "bonn,scannet", "--benchmark-root", str(mini_benchmark), "--checkpoint",
                     str(model), "--encoder", "vitt", "--input-size", str(INPUT_SIZE), "--tae", "--output",
                     str(tmp / "eval.json"), "--no-progress"]) == 0
    cfg = tiny_recipe(synthetic_shards, tmp / "run", 0, 1, workers=0)
    cfg["model"].update(init_checkpoint=str(model), val_input_size=INPUT_SIZE)
    cfg["data"]["init_args"].update(val_shards=str(tmp / "val" / "*.tar"), val={"num_workers": 1})
    cfg["trainer"].update(limit_val_batches=None, num_sanity_val_steps=0)
    cfg["trainer"]["callbacks"].append({"class_path": "tests.fakes.recorder.ValidationOutputs"})
    from vda_lightning.training.cli import run

    argv, sys.argv = sys.argv, ["vda-fit"]
    try:
        cli = run(["--config", str(write_config(tmp / "fit.yaml", cfg))])
    finally:
        sys.argv = argv
    fitted = json.loads((tmp / "run" / "final_validation.json").read_text())
    outputs = next(cb for cb in cli.trainer.callbacks if type(cb).__name__ == "ValidationOutputs").seen
    return json.loads((tmp / "eval.json").read_text()), fitted["after"], outputs


def _relative(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


def _pairs(ev: dict, val: dict) -> dict[str, tuple[float, float]]:
    return {"bonn/abs_rel": (val["bonn"]["abs_rel"], ev["depth"]["bonn"]["abs_relative_difference"]),
            "bonn/delta1": (val["bonn"]["delta1"], ev["depth"]["bonn"]["delta1_acc"]),
            "scannet/abs_rel": (val["scannet"]["abs_rel"], ev["depth"]["scannet"]["abs_relative_difference"]),
            "scannet/delta1": (val["scannet"]["delta1"], ev["depth"]["scannet"]["delta1_acc"]),
            "scannet/tae": (val["scannet"]["tae"], ev["tae"]["scannet"]["mean"])}


def test_fit_validation_equals_vda_eval_on_the_benchmark_sequences(parity):
    ev, val, _ = parity
    assert val["bonn"]["sequences"] == ev["depth"]["bonn"]["sequences"] == 3
    assert val["scannet"]["sequences"] == ev["depth"]["scannet"]["sequences"] == 2
    errors = {k: _relative(a, b) for k, (a, b) in _pairs(ev, val).items()}
    print("vda-fit validation vs vda-eval, relative differences:", {k: f"{v:.1e}" for k, v in errors.items()})
    assert max(errors.values()) <= 1e-6, errors


def test_one_80m_cap_for_every_dataset_misses_vda_eval(parity, monkeypatch):
    """The same predictions scored the old way (every dataset capped at 80 m) do not match: the cap matters."""
    from vda_lightning.io import benchmarks
    from vda_lightning.training import evaluator

    ev, _, outputs = parity
    monkeypatch.setattr(evaluator, "get_benchmark",
                        lambda name: dataclasses.replace(benchmarks.get_benchmark(name), max_depth=80.0))
    monkeypatch.setattr(evaluator, "tae_setting", lambda name: None if benchmarks.tae_setting(name) is None else
                        dataclasses.replace(benchmarks.tae_setting(name), max_depth=80.0))
    scorer = evaluator.ValidationEvaluator(default_max_depth=80.0)
    for out, batch in outputs:
        scorer.update(out, batch)
    capped = scorer.compute()
    errors = {k: _relative(a, b) for k, (a, b) in _pairs(ev, capped).items()}
    print("one 80 m cap vs vda-eval, relative differences:", {k: f"{v:.1e}" for k, v in errors.items()})
    for ds in ("bonn", "scannet"):
        assert max(v for k, v in errors.items() if k.startswith(ds)) > 1e-6, (ds, errors)


# ----------------------------------------------------------------------------------------- bad validation data
def _blank_clip_shard(path: Path) -> Path:
    """One validation clip whose ground truth is invalid everywhere (depth 0)."""
    import numpy as np

    from vda_lightning.data.format import ClipRecord
    from vda_lightning.data.shards import ShardWriter

    rng = np.random.default_rng(0)
    with ShardWriter(str(path)) as w:
        w.write(ClipRecord(rng.integers(0, 256, (4, 28, 42, 3), dtype=np.uint8), "synthetic", "blank",
                           list(range(4)), depth=np.zeros((4, 28, 42), np.float32)))
    return path


def test_a_clip_without_valid_ground_truth_is_skipped_counted_and_named(synthetic_shards, tmp_path, capsys,
                                                                        caplog):
    cfg = tiny_recipe(synthetic_shards, tmp_path / "run", 2, 2, workers=0)
    cfg["data"]["init_args"].update(val_shards=[str(synthetic_shards / "val-*.tar"),
                                                str(_blank_clip_shard(tmp_path / "blank-000000.tar"))],
                                    val={"size": 0, "num_workers": 0})
    cfg["trainer"].update(limit_val_batches=None, val_check_interval=2, check_val_every_n_epoch=None,
                          num_sanity_val_steps=0)
    with caplog.at_level(logging.WARNING, logger="vda_lightning.training"):
        code, out, err, _ = fit_in_process(capsys, "--config", str(write_config(tmp_path / "fit.yaml", cfg)))
    assert code == 0, err[-3000:]
    table = json.loads((tmp_path / "run" / "final_validation.json").read_text())["after"]["synthetic"]
    assert table["skipped_no_valid_gt"] == 1 and table["sequences"] == 3  # the 3 good clips are scored
    assert "skipped synthetic/blank (key synthetic__blank__000000)" in caplog.text and "no_valid_gt" in caplog.text
    metrics = (tmp_path / "run" / "logs" / "version_0" / "metrics.csv").read_text().splitlines()
    assert "val/synthetic/skipped_no_valid_gt" in metrics[0]


def test_a_nonfinite_prediction_is_skipped_and_counted(caplog):
    from vda_lightning.training.evaluator import ValidationEvaluator

    batch = {"dataset": ["d", "d"], "sequence": ["good", "nan"], "key": ["d__good", "d__nan"],
             "depth": torch.rand(2, 3, 14, 14) + 1, "mask": torch.ones(2, 3, 14, 14, dtype=torch.bool),
             "has_pose": torch.zeros(2, dtype=torch.bool)}
    pred = torch.rand(2, 3, 14, 14) + 0.1
    pred[1, 0, 0, 0] = float("nan")
    scorer = ValidationEvaluator(default_max_depth=10.0)
    with caplog.at_level(logging.WARNING, logger="vda_lightning.training"):
        scorer.update({"disparity": pred}, batch)
    row = scorer.compute()["d"]
    assert row["sequences"] == 1 and row["skipped_nonfinite_prediction"] == 1
    assert "d/nan (key d__nan)" in caplog.text


# ------------------------------------------------------------------------------------------------ run folders
def _run_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_one_run_folder_per_experiment(synthetic_shards, tmp_path, capsys, monkeypatch):
    """The same recipe into two run folders: two complete, separate runs (config, checkpoints, logger files,
    final table each in its own folder). A fresh run into a used folder is refused; resuming it is not."""
    monkeypatch.setenv("WANDB_MODE", "disabled")  # vda_logger's CSV fallback, saved in the run folder
    cfg = tiny_recipe(synthetic_shards, None, 2, 2, workers=0)
    cfg["trainer"]["logger"] = {"class_path": "vda_lightning.dashboards.vda_logger",
                                "init_args": {"project": "p", "name": "n"}}
    cfg["data"]["init_args"].update(val_shards=str(synthetic_shards / "val-*.tar"), val={"size": 0, "num_workers": 0})
    cfg["trainer"].update(limit_val_batches=None, num_sanity_val_steps=0)
    recipe = write_config(tmp_path / "recipe.yaml", cfg)
    runs = {name: tmp_path / "runs" / name for name in ("exp1", "exp2")}
    for root in runs.values():
        code, _, err, _ = fit_in_process(capsys, "--config", str(recipe), "--trainer.default_root_dir", str(root))
        assert code == 0, err[-3000:]
    for name, root in runs.items():
        files = _run_files(root)
        assert {"config.yaml", "final_validation.json", "checkpoints/last.ckpt"} <= files, (name, files)
        assert any(f.endswith("metrics.csv") for f in files), files  # the logger wrote into this run's folder
        saved = yaml_load(root / "config.yaml")
        assert saved["trainer"]["default_root_dir"] == str(root)
        assert saved["checkpoint"]["dirpath"] == str(root / "checkpoints")
    assert not (tmp_path / "runs" / "quickstart").exists() and sorted(os.listdir(tmp_path / "runs")) == ["exp1",
                                                                                                         "exp2"]
    before = {p: p.stat().st_mtime_ns for p in runs["exp1"].rglob("*") if p.is_file()}
    code, _, err, _ = fit_in_process(capsys, "--config", str(recipe), "--trainer.default_root_dir", str(runs["exp1"]))
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("vda-fit: error:")]
    assert len(lines) == 1 and f"run folder {runs['exp1']} already holds a run" in lines[0]
    assert "--ckpt_path last" in lines[0] and "Traceback" not in err
    assert {p: p.stat().st_mtime_ns for p in runs["exp1"].rglob("*") if p.is_file()} == before  # untouched
    code, _, err, _ = fit_in_process(capsys, "--config", str(recipe), "--trainer.default_root_dir", str(runs["exp1"]),
                                     "--ckpt_path", "last", "--trainer.max_steps", "4")
    assert code == 0, err[-3000:]
    assert torch.load(runs["exp1"] / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4


def yaml_load(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


# ---------------------------------------------------------------------------------------------- config problems
ROOT = Path(__file__).resolve().parents[1]


def _one_line_error(capsys, *args) -> str:
    code, _, err, _ = fit_in_process(capsys, *args)
    lines = [line for line in err.splitlines() if line.startswith("vda-fit: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err[-2000:]
    return lines[0]


def test_the_paper_recipe_with_placeholders_is_one_line(capsys):
    paper = ROOT / "conf" / "paper"
    line = _one_line_error(capsys, "--config", str(paper / "base.yaml"), "--config", str(paper / "stage1.yaml"),
                           "--config", str(paper / "vits_stage1.yaml"))
    assert "data.init_args.train_shards" in line and "shards/tartanair/train-*.tar" in line
    assert "relative to" in line and "more problem" in line  # the init checkpoint, val shards: placeholders


def test_missing_checkpoint_and_teacher_name_the_key(synthetic_shards, tmp_path, capsys):
    cfg = tiny_recipe(synthetic_shards, tmp_path / "run", 2, 2)
    cfg["model"]["init_checkpoint"] = str(tmp_path / "nope.safetensors")
    line = _one_line_error(capsys, "--config", str(write_config(tmp_path / "a.yaml", cfg)))
    assert f"model.init_checkpoint: {tmp_path / 'nope.safetensors'} does not exist" in line
    cfg["model"].update(init_checkpoint=None, teacher_encoder="vits", teacher_checkpoint="/path/to/dav2.pth")
    line = _one_line_error(capsys, "--config", str(write_config(tmp_path / "b.yaml", cfg)))
    assert "model.teacher_checkpoint: /path/to/dav2.pth does not exist (a placeholder" in line
    assert not (tmp_path / "run").exists()


def test_renamed_data_keys_name_their_new_place(synthetic_shards, tmp_path, capsys):
    cfg = tiny_recipe(synthetic_shards, tmp_path / "run", 2, 2)
    config = str(write_config(tmp_path / "a.yaml", cfg))
    line = _one_line_error(capsys, "--config", config, "--data.init_args.synthetic_dir=/tmp/x")
    assert "data.init_args.synthetic_dir (on the command line) is now data.init_args.synthetic.dir" in line
    cfg["data"]["init_args"]["hflip"] = 0.0
    line = _one_line_error(capsys, "--config", str(write_config(tmp_path / "b.yaml", cfg)))
    assert f"data.init_args.hflip (in {tmp_path / 'b.yaml'}) is now data.init_args.augment.hflip" in line
    del cfg["data"]["init_args"]["hflip"]
    cfg["data"]["init_args"]["synthetic"] = True
    line = _one_line_error(capsys, "--config", str(write_config(tmp_path / "c.yaml", cfg)))
    assert "data.init_args.synthetic: true" in line and "is now a section" in line


def test_streams_are_scored_by_their_benchmark_by_name_or_as_declared():
    from vda_lightning.data.datamodule import ValConfig, VideoDepthDataModule
    from vda_lightning.io.benchmarks import stream_benchmark

    assert stream_benchmark("bonn") == "bonn" and stream_benchmark("scannet_500") == "scannet_500"
    assert stream_benchmark("my_bonn_copy") is None  # unregistered: the config's default settings
    assert stream_benchmark("my_bonn_copy", {"my_bonn_copy": "bonn"}) == "bonn"
    assert stream_benchmark("kitti", {"kitti": None}) is None
    dm = VideoDepthDataModule(val=ValConfig(benchmarks={"mine": "sintel", "kitti": "none"}))
    assert dm.val_benchmarks == {"mine": "sintel", "kitti": None}
    with pytest.raises(ValueError, match="val.benchmarks.mine: 'bonnn' is not a registered benchmark"):
        VideoDepthDataModule(val=ValConfig(benchmarks={"mine": "bonnn"}))
