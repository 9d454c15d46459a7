"""What `vda-fit` checks before any model, data or trainer is built, each problem as one line naming the key.

- renamed DataModule keys (the flat `synthetic_*`, augmentation, `image_*`, `val_*` and loader options became
  the `synthetic:`, `augment:`, `images:`, `val:` and `loader:` sections): the old key is named with its new place;
- the model's task: `model.metric` became the task (`model.class_path`, `training/tasks/`), and a key of one task
  given to the other is named with the task that takes it (`model_task_problem`);
- paths that do not exist (shards, init checkpoint, teacher checkpoint, `ckpt_path`), placeholders said so;
- the run folder: a fresh run never writes into a folder that already holds a run (`existing_run`), and a checkpoint
  folder written as `${trainer.default_root_dir}/...` follows the final run folder
  (`checkpoint_dirpath_for_final_root`).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from ..checkpoints.hub import EXPORT_FILE, is_hub_name
from ..cluster.resume import existing_run

__all__ = ["existing_run", "renamed_key_problem", "model_task_problem", "path_problems", "launcher_rank",
           "is_requeued_restart", "checkpoint_dirpath_for_final_root"]
DEFAULT_TASK = "vda_lightning.training.RelativeDepthTask"
METRIC_TASK = "vda_lightning.training.MetricDepthTask"
ROOT_REFERENCE = "${trainer.default_root_dir}"
PLACEHOLDER = "/path/to/"
RENAMED_DATA_KEYS = {
    "synthetic_dir": "synthetic.dir", "synthetic_train_clips": "synthetic.train_clips",
    "synthetic_val_clips": "synthetic.val_clips", "synthetic_images": "synthetic.images",
    "synthetic_height": "synthetic.height", "synthetic_width": "synthetic.width",
    "scale_min": "augment.scale (as [min, max])", "scale_max": "augment.scale (as [min, max])",
    "ratio_min": "augment.ratio (as [min, max])", "ratio_max": "augment.ratio (as [min, max])",
    "hflip": "augment.hflip", "brightness": "augment.brightness", "contrast": "augment.contrast",
    "saturation": "augment.saturation", "hue": "augment.hue",
    "image_batch_size": "images.batch_size", "image_shuffle_buffer": "images.shuffle_buffer",
    "image_need_target": "images.need_target", "val_size": "val.size", "val_clip_len": "val.clip_len",
    "val_batch_size": "val.batch_size", "val_num_workers": "val.num_workers", "val_benchmarks": "val.benchmarks",
    "pin_memory": "loader.pin_memory", "prefetch_factor": "loader.prefetch_factor",
    "persistent_workers": "loader.persistent_workers",
}
SHARD_KEYS = ("train_shards", "val_shards", "image_shards")


class ConfigProblem(ValueError):
    """A configuration that cannot run; the message is one line naming the key (and file or path)."""


def _renamed(key: str, value, where: str) -> str | None:
    if key in RENAMED_DATA_KEYS:
        return (f"data.init_args.{key}{where} is now data.init_args.{RENAMED_DATA_KEYS[key]} "
                "(the DataModule's sections: data/README.md §2)")
    if key == "synthetic" and (isinstance(value, bool) or str(value).lower() in ("true", "false")):
        if str(value).lower() == "true":
            return (f"data.init_args.synthetic: true{where} is now a section: synthetic: {{dir: ..., train_clips: "
                    "..., val_clips: ...}} ({{}} takes the defaults)")
        return f"data.init_args.synthetic: false{where} is now written by leaving the synthetic: section out"
    return None


def _config_files(args: list[str]) -> list[str]:
    files = []
    for i, arg in enumerate(args):
        if arg == "--config" and i + 1 < len(args):
            files.append(args[i + 1])
        elif arg.startswith("--config="):
            files.append(arg.split("=", 1)[1])
    return files


def _option_value(args: list[str], i: int, name: str) -> tuple[bool, str | None]:
    """(whether args[i] is option `name`, its value: `--name value` or `--name=value`)."""
    arg = args[i]
    if arg == name:
        return True, args[i + 1] if i + 1 < len(args) else None
    if arg.startswith(name + "="):
        return True, arg.split("=", 1)[1]
    return False, None


def _config_doc(args: list[str], i: int) -> tuple[str | None, object]:
    """(the file args[i] names when it is a `--config` option, else None; its YAML document, None when unreadable:
    the parser reports unreadable files itself)."""
    is_config, path = _option_value(args, i, "--config")
    if not (is_config and path):
        return None, None
    try:
        return path, yaml.safe_load(Path(path).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return path, None


def _yaml_get(doc, section: str, key: str):
    """(found, value) of doc[section][key] in a config file's YAML."""
    part = doc.get(section) if isinstance(doc, dict) else None
    return (True, part[key]) if isinstance(part, dict) and key in part else (False, None)


def checkpoint_dirpath_for_final_root(args: list[str]) -> str | None:
    """The checkpoint folder re-resolved against the final run folder, when its last setting (config files and
    options, in command-line order) is written `${trainer.default_root_dir}/...`; else None (nothing to redo).

    jsonargparse's omegaconf mode resolves the reference inside each config file, from that file's run folder: a
    `--trainer.default_root_dir` given later left the checkpoints in the recipe's default folder (the metric
    recipes: a resume into a new folder overwrote and deleted another run's checkpoints).
    """
    root = dirpath = None
    for i in range(len(args)):
        path, doc = _config_doc(args, i)
        if path:
            found, value = _yaml_get(doc, "trainer", "default_root_dir")
            root = value if found else root
            found, value = _yaml_get(doc, "checkpoint", "dirpath")
            dirpath = value if found else dirpath
            continue
        is_root, value = _option_value(args, i, "--trainer.default_root_dir")
        root = value if is_root else root
        is_dirpath, value = _option_value(args, i, "--checkpoint.dirpath")
        dirpath = value if is_dirpath else dirpath
    if not (isinstance(dirpath, str) and ROOT_REFERENCE in dirpath and isinstance(root, str) and root):
        return None
    if "${" in root or root.lower() in ("null", "none"):
        return None
    return dirpath.replace(ROOT_REFERENCE, root)


def renamed_key_problem(args: list[str]) -> str | None:
    """The first renamed DataModule key in the given config files or command-line options, as one line."""
    for path in _config_files(args):
        try:
            doc = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError):
            continue  # the parser reports unreadable files itself
        data = doc.get("data") if isinstance(doc, dict) else None
        init = data.get("init_args", data) if isinstance(data, dict) else None
        for key, value in (init or {}).items() if isinstance(init, dict) else ():
            problem = _renamed(str(key), value, f" (in {path})")
            if problem:
                return problem
    for i, arg in enumerate(args):
        if not arg.startswith("--data."):
            continue
        name, _, value = arg[len("--data."):].partition("=")
        if not _ and i + 1 < len(args):
            value = args[i + 1]
        name = name.removeprefix("init_args.")
        problem = _renamed(name.split(".")[0], value, " (on the command line)")
        if problem:
            return problem
    return None


def _model_settings(args: list[str]) -> tuple[str | None, list[tuple[str, object, str, bool]]]:
    """(the last `model.class_path` set, [(model key, value, where, written beside a class_path)]) from config
    files and `--model*` options in command-line order; keys under `init_args:` count as the task's keys."""
    class_path, keys = None, []
    for i, arg in enumerate(args):
        path, doc = _config_doc(args, i)
        if path:
            model = doc.get("model") if isinstance(doc, dict) else None
            if isinstance(model, str):
                class_path = model
            elif isinstance(model, dict):
                class_path = model.get("class_path", class_path)
                init = model.get("init_args")
                for key, value in [*model.items(), *(init.items() if isinstance(init, dict) else ())]:
                    if key not in ("class_path", "init_args", "dict_kwargs"):
                        keys.append((str(key), value, f" (in {path})", "class_path" in model and key in model))
            continue
        is_model, value = _option_value(args, i, "--model")
        if is_model:
            class_path = value
        elif arg.startswith("--model."):
            name, eq, value = arg[len("--model."):].partition("=")
            value = value if eq else (args[i + 1] if i + 1 < len(args) else None)
            name = name.removeprefix("init_args.")
            if name == "class_path":
                class_path = value
            else:
                keys.append((name, value, " (on the command line)", False))
    return class_path, keys


def _task_arguments() -> tuple[set[str], set[str]]:
    """(arguments only the relative task takes, arguments only the metric task takes)."""
    import inspect

    from .tasks import MetricDepthTask, RelativeDepthTask

    def own(task) -> set[str]:
        return set(inspect.signature(task.__init__).parameters) - {"self", "kwargs"}

    return own(RelativeDepthTask) - own(MetricDepthTask), own(MetricDepthTask) - own(RelativeDepthTask)


def model_task_problem(args: list[str]) -> str | None:
    """The first model key that names the old `metric` switch or belongs to the other task, as one line naming
    where it goes now. Recipes of a task of one's own (another class_path) are left to the parser."""
    class_path, keys = _model_settings(args)
    for key, value, where, beside_class_path in keys:
        if beside_class_path:  # jsonargparse would take it for an argument of the default task
            return f"model.{key}{where} is written beside class_path: the task's arguments go under init_args:"
        if key != "metric":
            continue
        if str(value).lower() == "true":
            return f"model.metric: true{where} is now model.class_path: {METRIC_TASK} (docs/metric.md)"
        return (f"model.metric: {value}{where} is now the task: leave it out for {DEFAULT_TASK} (the default), "
                f"or set model.class_path: {METRIC_TASK}")
    task = class_path.rsplit(".", 1)[-1] if isinstance(class_path, str) else "RelativeDepthTask"
    if task not in ("RelativeDepthTask", "MetricDepthTask"):
        return None
    relative_only, metric_only = _task_arguments()
    for key, _, where, _ in keys:
        if task == "RelativeDepthTask" and key in metric_only:
            return f"model.{key}{where} is an argument of the metric task: set model.class_path: {METRIC_TASK}"
        if task == "MetricDepthTask" and key in relative_only:
            return (f"model.{key}{where} is an argument of the relative task ({DEFAULT_TASK}), not of "
                    f"model.class_path: {class_path}")
    return None


def one_line_parse_error(message: str) -> str:
    """jsonargparse's report on a `model:` or `data:` section (a class chosen by class_path: "Does not validate
    against any of the Union subtypes ... Problem with given class_path 'X': Parser key "lr": Expected ...") as the
    one line that matters: `model.lr: Expected ... (X)`; any other message as it is."""
    lines = [line.strip() for line in message.splitlines()]
    section = re.fullmatch(r'Parser key "(\w+)":', lines[0]) if lines else None
    if section is None:
        return message
    for i, line in enumerate(lines):
        problem = re.fullmatch(r"- Problem with given class_path '(.+)':", line)
        if problem is None or i + 1 >= len(lines):
            continue
        where, detail = problem.group(1), lines[i + 1]
        key = re.fullmatch(r'Parser key "(.+)":', detail)
        if key and i + 2 < len(lines):
            return f"{section.group(1)}.{key.group(1)}: {lines[i + 2]} ({where})"
        unknown = re.fullmatch(r"(?:Option|Key) '(.+)' is not (?:accepted|expected)", detail)
        if unknown:
            return f"{section.group(1)}.{unknown.group(1)}: not an argument of {where}"
        return f"{section.group(1)}: {detail} ({where})"
    return message


def _get(ns, dotted: str):
    for part in dotted.split("."):
        if ns is None:
            return None
        ns = ns.get(part) if isinstance(ns, dict) else getattr(ns, part, None)
    return ns


def _missing_path(key: str, path: str) -> str:
    hint = " (a placeholder: point it at your file)" if PLACEHOLDER in str(path) else ""
    return f"{key}: {path} does not exist{hint}"


def path_problems(config, training: bool = True) -> list[str]:
    """Every shard pattern, checkpoint and teacher path of a parsed vda-fit config that does not exist
    (`training=False`: a validation, which needs no training shards)."""
    from ..data.shards import expand_shards

    problems = []
    init = _get(config, "data.init_args")
    if init is not None and all(hasattr(init, k) for k in SHARD_KEYS):
        for key in SHARD_KEYS:
            spec = _get(init, key)
            for pattern in [spec] if isinstance(spec, str) else list(spec or []):
                try:
                    expand_shards(pattern, f"data.init_args.{key}")
                except FileNotFoundError as e:
                    if PLACEHOLDER in str(pattern):
                        hint = " (a placeholder: point it at your shards, see data/README.md)"
                    elif not os.path.isabs(os.path.expanduser(str(pattern))) and "://" not in str(pattern) \
                            and not str(pattern).startswith("pipe:"):
                        hint = f" (relative to {os.getcwd()})"
                    else:
                        hint = ""
                    problems.append(f"{e}{hint}")
        if training and not _get(init, "train_shards") and _get(init, "synthetic") is None:
            problems.append("data.init_args.train_shards is empty (give shards, or a synthetic: section)")
    for key in ("init_checkpoint", "teacher_checkpoint"):  # the task's arguments (model.init_args: a class_path)
        path = _get(config, f"model.init_args.{key}") or _get(config, f"model.{key}")
        if path and not is_hub_name(str(path)) and not os.path.isfile(  # a Hub name is checked when fetched
                os.path.join(str(path), EXPORT_FILE) if os.path.isdir(str(path)) else str(path)):
            problems.append(_missing_path(f"model.{key}", path))
    ckpt = _get(config, "ckpt_path")
    if ckpt and ckpt not in ("last", "best", "hpc", "registry") and not os.path.isfile(str(ckpt)) \
            and "://" not in str(ckpt):
        problems.append(f"ckpt_path: {ckpt}: no such checkpoint file")
    return problems


def launcher_rank() -> int:
    """This process's global rank as the launcher tells it (before any process group exists); 0 if alone."""
    if os.environ.get("NODE_RANK", "0").isdigit() and int(os.environ.get("NODE_RANK", "0")) > 0:
        return 1  # some rank on another node: not rank 0, whatever its local rank
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if os.environ.get(var, "").isdigit():
            if var == "SLURM_PROCID" and int(os.environ.get("SLURM_NTASKS", "1")) <= 1:
                continue
            return int(os.environ[var])
    return 0


def is_requeued_restart() -> bool:
    """A SLURM job restarted after a requeue (it may start again in its own folder)."""
    return os.environ.get("SLURM_RESTART_COUNT", "0").isdigit() and int(os.environ.get("SLURM_RESTART_COUNT", "0")) > 0
