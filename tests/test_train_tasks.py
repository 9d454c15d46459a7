"""The training tasks (`vda_lightning/training/tasks/`): one base loop, a relative and a metric task, the recipes in
conf/ that pick them through the real `vda fit` parser, and the one-line refusals of the old `model.metric` switch
and of the DataModule keys that became sections."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from vda_lightning.losses import DistillationLoss, MetricDepthLoss, VideoDepthLoss
from vda_lightning.training import MetricDepthTask, RelativeDepthTask, VideoDepthModule
from vda_lightning.training.metric import metric_target

from tests.helpers.recipes import write_config
from tests.test_train_cli import fit_in_process, toy_config

CONF = Path(__file__).resolve().parents[1] / "conf"
RELATIVE, METRIC = "vda_lightning.training.RelativeDepthTask", "vda_lightning.training.MetricDepthTask"
SIZES = ("vits", "vitb", "vitl")
# Every recipe of conf/ in the compositions its header documents, and the task each one trains.
RECIPES = {
    "quickstart": (["quickstart.yaml"], RELATIVE),
    **{f"paper {size} stage {n}": (["paper/base.yaml", f"paper/stage{n}.yaml", f"paper/{size}_stage{n}.yaml"],
                                   RELATIVE) for size in SIZES for n in (1, 2)},
    **{f"metric {size}": (["paper/metric_base.yaml", f"paper/metric_{size}.yaml"], METRIC) for size in SIZES},
    "dinov3 vits stage 1": (["paper/base.yaml", "paper/stage1.yaml", "paper/dinov3_vits_stage1.yaml"], RELATIVE),
}


def test_the_compositions_cover_every_recipe_in_conf():
    assert {f for files, _ in RECIPES.values() for f in files} == {
        str(p.relative_to(CONF)) for p in CONF.rglob("*.yaml")}


def _merged_section(files: list[str], section: str) -> dict:
    """What the files set in `section` (its init_args), later files over earlier ones."""
    merged = {}
    for name in files:
        part = (yaml.safe_load((CONF / name).read_text()) or {}).get(section) or {}
        merged.update({k: v for k, v in part.items() if k not in ("class_path", "init_args")})
        merged.update(part.get("init_args") or {})
    return merged


def _assert_holds(printed, given, where: str) -> None:
    if isinstance(given, dict):
        for key, value in given.items():
            _assert_holds(printed[key], value, f"{where}.{key}")
    else:
        assert printed == given, where


@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_in_conf_parses_through_the_cli_into_its_task(name, capsys):
    files, task = RECIPES[name]
    code, out, err = fit_in_process(capsys, *[a for f in files for a in ("--config", str(CONF / f))], "--print_config")
    assert code in (0, None), err[-2000:]
    printed = yaml.safe_load(out)
    assert printed["model"]["class_path"] == task
    for section in ("model", "data"):  # every value the recipe sets arrives where it set it
        _assert_holds(printed[section]["init_args"], _merged_section(files, section), section)


@pytest.mark.parametrize("model, says", [
    ({"metric": True}, f"model.metric: true (in {{f}}) is now model.class_path: {METRIC}"),
    ({"metric": False}, f"model.metric: False (in {{f}}) is now the task: leave it out for {RELATIVE}"),
    ({"canonical_focal": 500.0}, f"model.canonical_focal (in {{f}}) is an argument of the metric task: set "
                                 f"model.class_path: {METRIC}"),
    ({"class_path": METRIC, "init_args": {"teacher_encoder": "vits"}},
     f"model.teacher_encoder (in {{f}}) is an argument of the relative task ({RELATIVE}), not of "
     f"model.class_path: {METRIC}"),
    ({"class_path": METRIC, "lr": 0.1}, "model.lr (in {f}) is written beside class_path"),
    ({"warmup_steps": "many"}, f"model.warmup_steps: Expected a <class 'int'>. Got value: many ({RELATIVE})"),
    ({"learning_rate": 1.0}, f"model.learning_rate: not an argument of {RELATIVE}"),
])
def test_a_key_of_the_old_module_or_of_the_other_task_is_one_line(tmp_path, capsys, model, says):
    recipe = write_config(tmp_path / "recipe.yaml", toy_config(tmp_path / "run", 2, 1))
    extra = write_config(tmp_path / "extra.yaml", {"model": model})
    code, _, err = fit_in_process(capsys, "--config", str(recipe), "--config", str(extra))
    lines = [line for line in err.splitlines() if "error:" in line]
    assert code == 2 and len(lines) == 1 and says.format(f=extra) in lines[0], err[-2000:]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("key, value, now", [
    ("val_size", 0, "val.size"),
    ("val_benchmarks", {"a": "bonn"}, "val.benchmarks"),
    ("image_batch_size", 4, "images.batch_size"),
    ("pin_memory", False, "loader.pin_memory"),
])
def test_a_data_key_that_became_a_section_is_one_line(tmp_path, capsys, key, value, now):
    cfg = toy_config(tmp_path / "run", 2, 1)
    cfg["data"]["init_args"][key] = value
    path = write_config(tmp_path / "a.yaml", cfg)
    code, _, err = fit_in_process(capsys, "--config", str(path))
    lines = [line for line in err.splitlines() if "error:" in line]
    assert code == 2 and len(lines) == 1, err[-2000:]
    assert f"data.init_args.{key} (in {path}) is now data.init_args.{now}" in lines[0]


def test_the_relative_task_refuses_a_metric_start_in_one_line(tmp_path, capsys, tiny_checkpoints):
    """Without `metric: true` the old module turned metric itself for a metric init checkpoint; the default task
    now names the task to choose instead of training metres as disparity."""
    cfg = toy_config(tmp_path / "run", 2, 1)
    cfg["model"]["init_checkpoint"] = str(tiny_checkpoints["metric"])
    code, _, err = fit_in_process(capsys, "--config", str(write_config(tmp_path / "a.yaml", cfg)))
    lines = [line for line in err.splitlines() if "error:" in line]
    assert code == 2 and len(lines) == 1 and "holds a metric depth model" in lines[0]
    assert f"model.class_path: {METRIC}" in lines[0] and "Traceback" not in err


def test_each_task_takes_only_its_own_arguments(tiny_checkpoints):
    with pytest.raises(TypeError, match="silog_lambda"):
        RelativeDepthTask(encoder="vitt", silog_lambda=0.5)
    with pytest.raises(TypeError, match="distill_weight"):
        MetricDepthTask(encoder="vitt", distill_weight=0.5)
    relative = RelativeDepthTask(encoder="vitt")
    metric = MetricDepthTask(encoder="vitt", init_checkpoint=str(tiny_checkpoints["video"]))  # a relative start
    assert (relative.metric, relative.model.config.metric, relative.evaluator.alignment) == (False, False,
                                                                                             "scale_shift")
    assert (metric.metric, metric.model.config.metric, metric.evaluator.alignment) == (True, True, "none")
    assert metric.hparams.init_checkpoint == str(tiny_checkpoints["video"]) and metric.hparams.lr == 1e-4


def test_video_depth_module_is_a_deprecated_factory_of_the_tasks(tiny_checkpoints):
    with pytest.warns(DeprecationWarning, match="RelativeDepthTask or MetricDepthTask"):
        assert type(VideoDepthModule(encoder="vitt")) is RelativeDepthTask
    with pytest.warns(DeprecationWarning):
        assert type(VideoDepthModule(encoder="vitt", metric=True)) is MetricDepthTask
    with pytest.warns(DeprecationWarning):  # metric=None: as the init checkpoint says, as the old module did
        assert type(VideoDepthModule(encoder="vitt", init_checkpoint=str(tiny_checkpoints["metric"]))) \
            is MetricDepthTask
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="silog_lambda needs a metric model"):
        VideoDepthModule(encoder="vitt", silog_lambda=0.5)


def _batch(g: torch.Generator) -> dict:
    """A video part (2 clips x 2 frames, the second clip without intrinsics) and an image part (2 one-frame clips)."""
    def part(b: int, t: int) -> dict:
        depth = torch.rand(b, t, 28, 28, generator=g) * 5 + 1
        K = torch.zeros(b, 3, 3)
        K[0] = torch.tensor([[40.0, 0, 14], [0, 40.0, 14], [0, 0, 1]])
        return {"frames": torch.rand(b, t, 3, 28, 28, generator=g), "depth": depth, "disparity": 1 / depth,
                "mask": torch.rand(b, t, 28, 28, generator=g) > 0.2, "K": K, "depth_kind": ["metric_depth"] * b}

    return {"video": part(2, 2), "image": part(2, 1)}


@pytest.mark.parametrize("task", ["relative", "metric"])
def test_the_base_loop_adds_the_task_terms_as_the_loss_modules_define_them(task):
    """One training step of each task equals its loss modules applied by hand to the same predictions."""
    torch.manual_seed(0)
    if task == "relative":
        module = RelativeDepthTask(encoder="vitt", tgm_weight=None, distill_weight=0.25).train()
    else:
        module = MetricDepthTask(encoder="vitt", canonical_focal=20.0, metric_max_depth=None).train()
    batch = _batch(torch.Generator().manual_seed(1))
    got = module.training_step(batch, 0)
    video, image = batch["video"], batch["image"]
    with torch.no_grad():
        pred_video, pred_image = module(video["frames"]), module(image["frames"])
    if task == "relative":
        expected = VideoDepthLoss(stable_scale=10.0)(pred_video, video["disparity"], video["mask"])["total_loss"] \
            + DistillationLoss(weight=0.25)(pred_image, image["disparity"], image["mask"])
    else:
        loss = MetricDepthLoss(0.5, 1.0, 1e-3, None)
        expected = loss(pred_video, *metric_target(video, 20.0)[:2])["total_loss"] \
            + loss(pred_image, *metric_target(image, 20.0)[:2])["silog_loss"]
        assert module.counters["metric_samples_without_K"] == 1  # the video clip without K (images are not counted)
    assert torch.isfinite(got) and got.item() == pytest.approx(expected.item(), rel=1e-5)
    assert module.counters["skipped_nonfinite_loss"] == 0
