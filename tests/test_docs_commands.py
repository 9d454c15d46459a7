"""Every command in README.md and docs/*.md fenced shell blocks (```bash, ```sh, ```console) still parses with the
real parsers, and `vda <command> --help` runs for every command (issue 30: docs that drifted).

In-process and cheap: each `vda` command line is parsed by its command's own argparse parser (`build_parser` of
the module the command table names), a `vda fit` line's --config files must exist, and commands that are not
`vda` must be on the allow-list below with the reason they are not run here (installs, the suite, clusters)."""
from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest

from vda_lightning.cli import main as vda_main
from vda_lightning.cli.commands import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(?:bash|sh|console)\n(.*?)^```", re.S | re.M)
VDA = re.compile(r"^(?:\S+=\S+\s+)*(?:\.venv/bin/)?(?:python3? -m vda_lightning |vda |vda-(?=\w))")

# (file, command prefix, why it is not run here)
ALLOWED = [
    ("README.md", "python3 -m venv .venv", "an install: needs the network and minutes (.ci/run does it)"),
    ("README.md", ".venv/bin/pip install", "an install: needs the network and minutes (.ci/run does it)"),
    ("README.md", ".venv/bin/python -m pytest", "the test suite itself"),
    ("cluster.md", "", "a rendered sbatch script: needs a SLURM cluster (tests/test_slurm_jobs.py runs one)"),
    ("models.md", "hf download", "downloads from the Hugging Face Hub (network)"),
]


def doc_commands() -> list[tuple[str, str]]:
    """(file name, command) for each command of each fenced shell block: continuation lines joined, comments and
    a leading `$ ` dropped, `a && b` split."""
    found = []
    for path in DOCS:
        for block in FENCE.findall(path.read_text()):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.strip().removeprefix("$ ")
                if not line or line.startswith("#"):
                    continue
                for part in line.split(" && "):
                    part = shlex.split(part, comments=True)
                    if part:
                        found.append((path.name, shlex.join(part)))
    return found


def allowed(name: str, command: str) -> str | None:
    return next((why for f, prefix, why in ALLOWED if f == name and command.startswith(prefix)), None)


def vda_argv(command: str) -> list[str]:
    """`vda infer x` / `vda-infer x` / `.venv/bin/vda infer x` / `ENV=1 vda ...` -> ['infer', 'x']."""
    words = [w for w in shlex.split(command) if not re.match(r"^[A-Z_]+=", w)]
    head = words[0].removeprefix(".venv/bin/")
    if head.startswith("python"):
        return words[3:]
    return words[1:] if head == "vda" else [head.removeprefix("vda-"), *words[1:]]


COMMAND_LINES = doc_commands()


def test_the_docs_hold_commands_and_the_allow_list_is_used():
    assert sum(1 for _, c in COMMAND_LINES if VDA.match(c)) >= 8
    for name, prefix, _ in ALLOWED:  # a stale entry is drift too
        assert any(f == name and c.startswith(prefix) for f, c in COMMAND_LINES), (name, prefix)


@pytest.mark.parametrize("name,command", COMMAND_LINES, ids=[f"{n}:{c[:40]}" for n, c in COMMAND_LINES])
def test_each_documented_command_parses(name, command):
    if not VDA.match(command):
        assert allowed(name, command), f"{name}: `{command}` is not a vda command: allow-list it with a reason"
        return
    if allowed(name, command):
        return
    argv = vda_argv(command)
    cmd = COMMANDS[argv[0]]
    if cmd.lightning:  # LightningCLI would build the model: check what can drift, the recipe files
        configs = [argv[i + 1] for i, w in enumerate(argv) if w == "--config"]
        assert configs and all((ROOT / c).is_file() for c in configs), f"{name}: {command}"
        return
    module = importlib.import_module(cmd.module)
    parser = module.build_parser(f"vda {argv[0]}")
    try:
        parser.parse_args(argv[1:])
    except SystemExit as e:
        pytest.fail(f"{name}: `{command}` does not parse (exit {e.code})")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_help_runs(command, capsys):
    try:
        code = vda_main([command, "--help"])
    except SystemExit as e:  # argparse's --help exits; a dispatcher of subcommands returns
        code = e.code
    assert code == 0 and f"vda {command}" in capsys.readouterr().out
