"""`vda fit` / `vda validate`'s checks before weight (issue 28): what the command line and its YAML recipes can
refuse is refused before Lightning (and torch) is imported, in one line and exit status 2.

Run by the `vda` dispatcher before the command's module is imported (`cli/commands.py`, `Command.preflight`):

* every `--config` / `-c` file exists, is a regular readable file, parses as YAML and holds a mapping (an inline
  YAML mapping given to --config, which jsonargparse also takes, passes);
* the recipes merged in command-line order with the dotted options after them (`--ckpt_path`,
  `--model.init_checkpoint`, ...) are given to the same `config_checks.path_problems` that runs after the parse:
  a missing init / teacher checkpoint or `ckpt_path` (not `last`, `best`, ...) is named with its key; values
  written with `${...}` interpolation are left to the parse;
* an init / teacher checkpoint or `ckpt_path` that exists must hold weights (`cli.preflight.checked_weights`; a
  Hub name is the load's to fetch).

Shards, the run folder and every key's type are checked after the parse, as before (`training/cli.py`); `--help`
and `--print_config` skip the path checks. Nothing here imports torch.
"""
from __future__ import annotations

import os

import yaml

from ..cli import errors

SKIP = ("-h", "--help")
CONFIG_FLAGS = ("-c", "--config")
CHECKPOINT_KEYS = ("init_checkpoint", "teacher_checkpoint")


def _options(argv: list[str]):
    """(option name, value) of each `--name value` / `--name=value` / `-c value` in `argv`, in order."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--") and "=" in arg:
            name, value = arg.split("=", 1)
            yield name, value
        elif arg.startswith("-") and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            yield arg, argv[i + 1]
            i += 1
        i += 1


def read_recipe(value: str) -> dict:
    """The YAML mapping a --config value names (or is, inline); CommandError naming the file otherwise."""
    from ..trust import ReadError, display, regular_file

    if not os.path.exists(value):
        try:
            inline = yaml.safe_load(value)
        except yaml.YAMLError:
            inline = None
        if isinstance(inline, dict):  # jsonargparse takes a YAML document in place of a file name
            return inline
        raise errors.CommandError(f"{display(value)}: no such config file")
    try:
        regular_file(value, "config file")
        with open(value, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except ReadError as e:
        raise errors.CommandError(str(e)) from None
    except UnicodeDecodeError:
        raise errors.CommandError(f"{display(value)}: config file is not UTF-8 text") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise errors.CommandError(f"{display(value)}: not valid YAML{where} ({problem})") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise errors.CommandError(f"{display(value)}: a config file is a YAML mapping of sections (trainer:, "
                                  f"model:, data:), not a {type(doc).__name__}")
    return doc


def _merge(into: dict, doc: dict) -> None:
    """jsonargparse's order: later settings win, section by section; the model's task arguments in one place."""
    for key, value in doc.items():
        if key == "model" and isinstance(value, dict):
            if not isinstance(into.get("model"), dict):
                into["model"] = {"init_args": {}}
            args = into["model"]["init_args"]
            if isinstance(value.get("init_args"), dict):
                args.update(value["init_args"])
            args.update({k: v for k, v in value.items() if k not in ("class_path", "init_args")})
        elif isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _dotted(name: str, value: str) -> dict:
    """`--a.b.c v` as {"a": {"b": {"c": v}}}, the value read as YAML (as jsonargparse reads it)."""
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        parsed = value
    parts = name[2:].split(".")
    if parts[0] == "model":  # the task's arguments: `--model.init_args.x` and `--model.x` are the same key
        parts = [p for p in parts if p != "init_args"]
    doc: object = parsed
    for part in reversed(parts):
        doc = {part: doc}
    return doc  # type: ignore[return-value]


def merged_recipe(argv: list[str]) -> dict:
    """The recipes and dotted options of `argv` merged, in command-line order."""
    merged: dict = {}
    for name, value in _options(argv):
        if name in CONFIG_FLAGS:
            _merge(merged, read_recipe(value))
        elif name.startswith("--") and (name == "--ckpt_path" or "." in name):
            _merge(merged, _dotted(name, value))
    return merged


def _checked(value) -> str | None:
    """A path value the preflight can check: a plain string, not `${...}` interpolation."""
    return value if isinstance(value, str) and value and "${" not in value else None


def check(argv: list[str], prog: str, training: bool = True) -> int | None:
    """None when the command may start; else the exit status after one error line."""
    from ..checkpoints.read import CheckpointError
    from ..cli.preflight import checked_weights
    from ..trust import ReadError
    from .config_checks import path_problems

    if any(arg in SKIP for arg in argv):
        return None
    try:
        config = merged_recipe(argv)
        if any(arg == "--print_config" or arg.startswith("--print_config=") for arg in argv):
            return None
        model = config.get("model", {}).get("init_args", {}) if isinstance(config.get("model"), dict) else {}
        for key in CHECKPOINT_KEYS:
            if key in model:
                model[key] = _checked(model[key])
        if "ckpt_path" in config:
            config["ckpt_path"] = _checked(config["ckpt_path"])
        problems = path_problems(config, training=training)
        if problems:
            more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
            return errors.fail(prog, problems[0] + more)
        for key in CHECKPOINT_KEYS:
            if model.get(key):
                checked_weights(model[key])
        ckpt = config.get("ckpt_path")
        if ckpt and os.path.isfile(ckpt):
            checked_weights(ckpt)
    except (errors.CommandError, CheckpointError, ReadError) as e:
        return errors.fail(prog, str(e))
    return None


def check_fit(argv: list[str], prog: str) -> int | None:
    """`vda fit`'s preflight (`check`)."""
    return check(argv, prog, training=True)


def check_validate(argv: list[str], prog: str) -> int | None:
    """`vda validate`'s preflight (`check`): no training shards needed."""
    return check(argv, prog, training=False)
