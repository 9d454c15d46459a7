"""`vda <command> [options]`: one program for every job; `vda-<command>` scripts stay as aliases of the same code.

    vda fit --config conf/quickstart.yaml
    vda validate --config conf/quickstart.yaml --ckpt_path runs/quickstart/checkpoints/last.ckpt
    vda infer clip.mp4 --checkpoint model.safetensors --save npz,vis
    vda --help                          # every command with one line;  vda <command> --help: its options

Each command's module is imported only when that command runs, so `vda --help` and `vda <command> --help` start in
well under a second (fit and validate excepted: they are LightningCLI). The commands, `vda bench`'s too, and their
aliases: the one table in `cli/commands.py`. Shared options: `cli/options.py`; error lines and exit codes (0 ok,
1 some inputs failed, 2 usage or input error): `cli/errors.py`.
"""
from __future__ import annotations

import os
import sys

from .commands import COMMANDS, run
from .errors import EXIT_OK, EXIT_USAGE, interrupted

PROG = "vda"


def usage() -> str:
    from .. import __version__

    width = max(map(len, COMMANDS))
    lines = [f"usage: {PROG} <command> [options]      ({PROG} <command> --help: that command's options)", "",
             f"Video Depth Anything with PyTorch Lightning (vda-lightning {__version__}).", "", "commands:"]
    lines += [f"  {name:<{width}}  {cmd.summary}" for name, cmd in COMMANDS.items()]
    lines += ["", "options:", f"  {'-h, --help':<{width}}  show this message and exit",
              f"  {'--version':<{width}}  show the version and exit", "",
              "The scripts vda-fit, vda-eval, vda-infer, ... run the same commands with the same arguments."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Dispatch `vda <command> ARGS` to the command's main with prog `vda <command>`; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), end="", file=sys.stdout if argv else sys.stderr)
        return EXIT_OK if argv else EXIT_USAGE
    if argv[0] == "--version":
        from .. import __version__

        print(f"{PROG} {__version__}")
        return EXIT_OK
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"usage: {PROG} <command> [options]\n{PROG}: error: unknown command {name!r} "
              f"(choose from {', '.join(COMMANDS)})", file=sys.stderr)
        return EXIT_USAGE
    prog = f"{PROG} {name}"
    try:
        return run(COMMANDS[name], prog, rest)
    except KeyboardInterrupt:  # commands end their own work with 130; this covers imports and argument parsing
        return interrupted(prog)


def fit_alias() -> int:
    """The `vda-fit` script: `vda fit` with its checks before weight (`training/preflight.py`), which the Lightning
    module's own `main` would only reach after importing Lightning and torch; error lines say `vda-fit`."""
    prog = os.path.basename(sys.argv[0]) or "vda-fit"
    try:
        return run(COMMANDS["fit"], prog, sys.argv[1:])
    except KeyboardInterrupt:
        return interrupted(prog)
