"""`vda <command>`: the dispatcher, the vda-* aliases, --help (fast, with defaults), exit codes and error lines."""
from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import lightning.pytorch  # noqa: F401  (imported here: its log handler must not keep a test's captured stderr)
import pytest

from vda_lightning.cli import COMMANDS, main
from vda_lightning.cli.errors import describe

from tests.test_train_cli import toy_config, write_config

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "lightning", "cv2", "av", "torchmetrics", "timm", "webdataset", "onnx", "onnxruntime", "onnxscript")
WANTED = ["fit", "validate", "eval", "infer", "export", "shard", "prepare-benchmark", "pseudolabel", "submit", "bench"]


@pytest.fixture(autouse=True)
def _root_log_handlers():
    """`vda eval` calls logging.basicConfig, whose handler would outlive this test's captured stderr."""
    import logging

    before = list(logging.root.handlers)
    yield
    logging.root.handlers[:] = before


def run_main(capsys, *argv) -> tuple[int, str, str]:
    """`vda ARGV` in this process: (exit status, stdout, stderr), whether the command returns or exits."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_vda_help_lists_every_command_with_its_summary(capsys):
    assert list(COMMANDS) == WANTED
    code, out, _ = run_main(capsys, "--help")
    assert code == 0
    for name, cmd in COMMANDS.items():
        assert f"  {name} " in out and cmd.summary in out
    assert run_main(capsys, "--version")[1].strip().startswith("vda 0.")


@pytest.mark.parametrize("name", WANTED)
def test_every_command_help_through_the_dispatcher(capsys, name):
    code, out, _ = run_main(capsys, name, "--help")
    assert code == 0
    assert out.startswith(f"usage: vda {name}"), out[:200]


SUBCOMMANDS = [(name, sub) for name, cmd in COMMANDS.items() for sub in cmd.subcommands]


def test_bench_reads_its_subcommands_from_the_one_table():
    from vda_lightning.bench import SUBCOMMANDS as bench_table

    assert SUBCOMMANDS == [("bench", sub) for sub in ("infer", "data", "train", "gpu", "speed", "startup", "streaming")]
    assert bench_table is COMMANDS["bench"].subcommands


@pytest.mark.parametrize(("name", "sub"), SUBCOMMANDS)
def test_every_subcommand_in_the_table_dispatches_and_shows_its_help(capsys, monkeypatch, name, sub):
    """`vda NAME` lists SUB with its summary; `vda NAME SUB --help` and the alias `vda-NAME SUB --help` reach it."""
    command = COMMANDS[name]
    code, out, _ = run_main(capsys, name, "--help")
    assert code == 0 and f"  {sub} " in out and command.subcommands[sub].summary in out
    code, out, _ = run_main(capsys, name, sub, "--help")
    assert code == 0 and out.startswith(f"usage: vda {name} {sub} "), out[:200]
    monkeypatch.setattr(sys, "argv", [f"/venv/bin/{command.alias}", sub, "--help"])
    with pytest.raises(SystemExit) as e:
        getattr(importlib.import_module(command.module), command.function)()
    assert e.value.code == 0 and capsys.readouterr().out.startswith(f"usage: {command.alias} {sub} ")


def _alias_targets() -> dict[str, str]:
    """pyproject's [project.scripts] (read by hand: tomllib is Python 3.11+, we support 3.10)."""
    section = (ROOT / "pyproject.toml").read_text().split("[project.scripts]\n", 1)[1].split("\n[", 1)[0]
    scripts = dict(re.findall(r'^([\w-]+)\s*=\s*"([^"]+)"', section, flags=re.M))
    assert scripts.pop("vda") == "vda_lightning.cli:main"
    return scripts


def test_every_alias_in_pyproject_is_the_command_it_names():
    scripts = _alias_targets()
    aliases = {cmd.alias: (name, cmd) for name, cmd in COMMANDS.items() if cmd.alias}
    assert set(scripts) == set(aliases)
    for script, target in scripts.items():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), script
        name, cmd = aliases[script]
        # a command with checks before weight: its script goes through the dispatcher, which runs them first
        expected = ("vda_lightning.cli", f"{name}_alias") if cmd.preflight else (cmd.module, cmd.function)
        assert (module, function) == expected, script


@pytest.mark.parametrize("script", sorted(_alias_targets()))
def test_every_alias_runs_as_its_console_script(capsys, monkeypatch, script):
    """What the installed `vda-*` wrapper does: sys.argv = [script, ...]; sys.exit(main())."""
    module, function = _alias_targets()[script].split(":")
    monkeypatch.setattr(sys, "argv", [f"/venv/bin/{script}", "--help"])
    try:
        code = getattr(importlib.import_module(module), function)()
    except SystemExit as e:
        code = e.code
    assert code in (0, None)
    assert capsys.readouterr().out.startswith(f"usage: {script}")


# ------------------------------------------------------------------------------------------------ --help

HELP_PROBE = """
import contextlib, io, json, sys
from vda_lightning.cli import COMMANDS, main
heavy = {heavy!r}
argvs = [[name, "--help"] for name, cmd in COMMANDS.items() if not cmd.lightning]
argvs += [["bench", "infer", "--help"], ["bench", "data", "--help"], ["bench", "train", "--help"],
          ["bench", "gpu", "--help"], ["prepare-benchmark", "kitti", "--help"]]
argvs += [["shard", sub, "--help"] for sub in ("folders", "manifest", "benchmark", "synthetic", "inspect")]
report = {{}}
for argv in argvs:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code
    report[" ".join(argv)] = [code, out.getvalue().splitlines()[0], sorted(m for m in heavy if m in sys.modules)]
print(json.dumps(report))
"""


def test_help_of_every_command_imports_no_heavy_package():
    """Everything but fit/validate (LightningCLI) builds its parser without torch, lightning, OpenCV or PyAV."""
    proc = subprocess.run([sys.executable, "-c", HELP_PROBE.format(heavy=HEAVY)], capture_output=True, text=True,
                          cwd=ROOT, check=True)
    report = json.loads(proc.stdout)
    assert len(report) == 18
    for argv, (code, first_line, imported) in report.items():
        assert code == 0 and first_line.startswith(f"usage: vda {argv.removesuffix(' --help')}"), argv
        assert imported == [], f"vda {argv} imported {imported}"


def test_infer_help_shows_defaults_without_importing_torch():
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "vda_lightning", "infer", "--help"],
                          capture_output=True, text=True, cwd=ROOT, env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    for default in ("--input-size PIXELS", "(default: 518)", "(default: auto)", "(default: npz;",
                    "(default: offline)", "(default: 1280)", "(default: fp16 on CUDA, as published; fp32 on the CPU)",
                    "{auto,vits,vitb,vitl,vitt}"):
        assert default in proc.stdout, default
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    # importlib.import_module (the dispatcher) is not itself logged by -X importtime, the imports it runs are:
    assert "vda_lightning.cli.options" in imported  # the probe saw the command's own imports
    assert not {m for m in imported if m.split(".")[0] in HEAVY}, sorted(m for m in imported if "torch" in m)[:5]


def _parsers():
    """Every argparse parser of the non-Lightning commands, sub-commands included."""
    from vda_lightning.bench import data as bench_data
    from vda_lightning.bench import infer as bench_infer

    modules = [importlib.import_module(cmd.module) for cmd in COMMANDS.values()
               if not cmd.lightning and cmd.module != "vda_lightning.bench"] + [bench_infer, bench_data]
    todo = [m.build_parser() for m in modules]
    while todo:
        parser = todo.pop()
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo += list(action.choices.values())


def test_every_option_shows_its_default(monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # no wrapping (textwrap also breaks at hyphens)
    for parser in _parsers():
        text = " ".join(parser.format_help().split())
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            default = action.default
            if default is None or default is False or default == [] or not action.option_strings:
                continue
            if "default" in (action.help or "").lower():
                continue  # states its own default, e.g. "fp16 on CUDA, fp32 on the CPU"
            assert f"(default: {default})" in text, f"{parser.prog} {action.dest}: default {default!r} not shown"


def test_encoder_choices_come_from_the_model_registry(monkeypatch, capsys):
    from vda_lightning.inference.cli import build_parser
    from vda_lightning.models.configs import MODEL_CONFIGS

    monkeypatch.setitem(MODEL_CONFIGS, "vitz", MODEL_CONFIGS["vitt"])  # a new registry entry, nothing else changed
    args = build_parser().parse_args(["clip.mp4", "--checkpoint", "c.pth", "--encoder", "vitz"])
    assert args.encoder == "vitz"
    monkeypatch.delitem(MODEL_CONFIGS, "vitz")
    code, _, err = run_main(capsys, "infer", "clip.mp4", "--checkpoint", "c.pth", "--encoder", "vitz")
    assert code == 2 and "invalid choice: 'vitz'" in err and "vitt" in err


# ------------------------------------------------------------------------------------------------ exit codes

@pytest.mark.parametrize("argv", [
    ["infer", "clip.mp4", "--checkpoint", "c.pth", "--input-size", "0"],
    ["eval", "--benchmark", "kitti", "--benchmark-root", ".", "--predictions", ".", "--input-size", "-14"],
    ["pseudolabel", "s.tar", "--output", "o", "--teacher-checkpoint", "c.pth", "--input-size", "big"],
    ["bench", "infer", "--input-size", "0"],
])
def test_input_size_must_be_a_positive_integer(capsys, argv):
    code, _, err = run_main(capsys, *argv)
    assert code == 2 and "argument --input-size: expected a positive integer" in err


@pytest.mark.parametrize("argv, message", [
    (["nope"], "unknown command 'nope'"),
    ([], "usage: vda <command>"),
    (["infer", "--checkpoint", "c.pth"], "the following arguments are required: INPUT"),
    (["export", "c.ckpt", "--format", "tflite"], "argument --format: invalid choice: 'tflite'"),
    (["shard"], "the following arguments are required: {folders,manifest,benchmark,synthetic,inspect,"),
    (["bench", "nope"], "unknown command 'nope'"),
    (["bench", "infer", "--modes", "fastest"], "--modes takes a comma list of model,runner,e2e,e2e-serial,"),
    (["submit", "--nodes", "2"], "--config and --run-dir are required"),
])
def test_usage_errors_exit_2(capsys, argv, message):
    code, out, err = run_main(capsys, *argv)
    assert code == 2 and message in err and "Traceback" not in err


def _one_error_line(err: str, prog: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    errors = [line for line in lines if line.startswith(f"{prog}: error: ")]
    assert len(errors) == 1, err
    return errors[0]


def test_input_errors_are_one_line_naming_the_file(tmp_path, capsys):
    """One known failure per command family: status 2, one `vda <command>: error: <file>: <cause>` line."""
    missing, nowhere = tmp_path / "missing.pth", tmp_path / "nowhere"
    cases = [  # (argv, prog, the file the line must name, the cause)
        (["infer", tmp_path, "--checkpoint", missing, "--output-dir", tmp_path / "out"], "vda infer", missing,
         "no such checkpoint file"),
        (["eval", "--benchmark", "kitti", "--benchmark-root", tmp_path, "--checkpoint", missing, "--no-progress",
          "--output", tmp_path / "r.json"], "vda eval", missing, "no such checkpoint file"),
        (["export", missing], "vda export", missing, "no such checkpoint file"),
        (["pseudolabel", nowhere, "--output", tmp_path / "pl", "--teacher-checkpoint", missing, "--device", "cpu"],
         "vda pseudolabel", nowhere, "does not exist"),
        (["shard", "inspect", nowhere], "vda shard", nowhere, "does not exist"),
        (["shard", "folders", nowhere, "--out", tmp_path / "s"], "vda shard", nowhere, "folder does not exist"),
        (["prepare-benchmark", "bonn", "--raw", nowhere, "--out", tmp_path / "b"], "vda prepare-benchmark", nowhere,
         "not found"),
        (["submit", "--config", tmp_path / "no.yaml", "--run-dir", tmp_path / "run"], "vda submit",
         tmp_path / "no.yaml", "training config not found"),
        (["bench", "data", "--shards", tmp_path / "no.tar", "--json", tmp_path / "b.json"], "vda bench data",
         tmp_path / "no.tar", "does not exist"),
    ]
    for argv, prog, named, cause in cases:
        code, _, err = run_main(capsys, *argv)
        line = _one_error_line(err, prog)
        assert code == 2, (argv, err)
        assert str(named) in line and cause in line, line
    # nothing was written (vda infer checks that its output folder is writable before it loads the model)
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and not list((tmp_path / "out").iterdir())


def test_bench_infer_reports_a_bad_checkpoint_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    code, _, err = run_main(capsys, "bench", "infer", "--encoder", "vitt", "--checkpoint", bad, "--input-size", "14",
                            "--lengths", "2", "--height", "14", "--width", "14", "--modes", "runner",
                            "--json", tmp_path / "b.json")
    line = _one_error_line(err, "vda bench infer")
    assert code == 2 and str(bad) in line and "not a checkpoint but a text file" in line
    assert not (tmp_path / "b.json").exists()


def test_cuda_without_a_gpu_is_an_input_error(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: --device cuda is valid here")
    code, _, err = run_main(capsys, "infer", tmp_path, "--checkpoint", tmp_path / "c.pth", "--device", "cuda",
                            "--output-dir", tmp_path / "out")
    assert code == 2 and _one_error_line(err, "vda infer").endswith("--device cuda: no CUDA device is available")


def test_the_alias_prog_names_its_errors(tmp_path, capsys):
    from vda_lightning.export import main as export_main

    assert export_main([str(tmp_path / "missing.ckpt")]) == 2
    assert _one_error_line(capsys.readouterr().err, "vda-export").endswith("missing.ckpt: no such checkpoint file")


def test_describe_makes_one_line():
    assert describe(FileNotFoundError(2, "No such file or directory", "/data/x.png")) == \
        "/data/x.png: No such file or directory"
    keys = ValueError("ckpt.pth: 3 keys missing\n  head.a\n  head.b\n  looks like a DAv2 image checkpoint")
    assert describe(keys) == "ckpt.pth: 3 keys missing (looks like a DAv2 image checkpoint)"


def test_a_registered_shard_converter_gets_the_shared_options_and_error_path(tmp_path, capsys, monkeypatch):
    from vda_lightning.data import cli as shard_cli

    def run(args):
        if args.broken:
            raise ValueError(f"{args.root}: not a demo dataset")
        return {"root": args.root, "clip_len": shard_cli.shard_options(args).clip_len}

    def arguments(p):
        p.add_argument("root", help="dataset root")
        p.add_argument("--broken", action="store_true", help="fail")
        shard_cli.add_shard_options(p)

    monkeypatch.setitem(shard_cli.SUBCOMMANDS, "demo", shard_cli.Subcommand("a demo dataset", arguments, run))
    assert "demo" in run_main(capsys, "shard", "--help")[1]
    code, out, _ = run_main(capsys, "shard", "demo", "ROOT", "--out", tmp_path, "--clip-len", "8")
    assert code == 0 and json.loads(out) == {"root": "ROOT", "clip_len": 8}
    code, _, err = run_main(capsys, "shard", "demo", "ROOT", "--out", tmp_path, "--broken")
    assert code == 2 and _one_error_line(err, "vda shard") == "vda shard: error: ROOT: not a demo dataset"


# ------------------------------------------------------------------------------------------------ fit / validate

def test_fit_then_validate_prints_the_same_table(tmp_path, capsys):
    """`vda fit` ends with the validation table of its final weights; `vda validate` on last.ckpt reprints it."""
    cfg = toy_config(tmp_path / "run", 2, 1)
    cfg["trainer"]["limit_val_batches"] = 1.0
    config = write_config(tmp_path / "toy.yaml", cfg)
    code, out, err = run_main(capsys, "fit", "--config", config)
    assert code == 0, err[-2000:]
    fitted = out.split("Validation after 2 steps:\n", 1)[1].split("\n(written")[0].strip().splitlines()
    assert fitted[0].split() == ["dataset", "metric", "value"] and len(fitted) > 3

    code, out, err = run_main(capsys, "validate", "--config", config, "--ckpt_path", "last",
                              "--results_file", tmp_path / "v.json")
    assert code == 0, err[-2000:]
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    table = out.split(f"Validation of {last} (step 2):\n", 1)[1].split("\n(written")[0].strip().splitlines()
    assert table == fitted
    saved = json.loads((tmp_path / "v.json").read_text())
    assert saved["step"] == 2 and saved["before"] is None
    written = json.loads((tmp_path / "run" / "final_validation.json").read_text())["after"]
    assert saved["after"] == written  # the very same numbers, not only the same 4 printed digits

    code, _, err = run_main(capsys, "validate", "--config", config, "--ckpt_path", tmp_path / "nope.ckpt")
    assert code == 2 and _one_error_line(err, "vda validate").endswith("nope.ckpt: no such checkpoint file")
