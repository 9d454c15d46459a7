"""`vda bench {infer,data,train,gpu} ...` (alias `vda-bench`): performance figures, printed and written as JSON
(never timed tests). Its subcommands are `vda bench`'s entry in the one command table, cli/commands.py."""
from __future__ import annotations

import sys

from ..cli.commands import COMMANDS, run
from ..cli.errors import EXIT_OK, EXIT_USAGE

PROG = "vda-bench"
SUBCOMMANDS = COMMANDS["bench"].subcommands


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SUBCOMMANDS:
        return _usage(argv, prog)
    return run(SUBCOMMANDS[argv[0]], f"{prog} {argv[0]}", argv[1:])


def _usage(argv: list[str], prog: str) -> int:
    """The subcommands with their summaries: on stdout for -h/--help (status 0), else on stderr (status 2)."""
    wanted_help = bool(argv) and argv[0] in ("-h", "--help")
    out = sys.stdout if wanted_help else sys.stderr
    print(f"usage: {prog} {{{','.join(SUBCOMMANDS)}}} [options]   ({prog} <command> --help for its options)", file=out)
    for name, cmd in SUBCOMMANDS.items():
        print(f"  {name:6s} {cmd.summary}", file=out)
    if argv and not wanted_help:
        print(f"{prog}: error: unknown command {argv[0]!r} (choose from {', '.join(SUBCOMMANDS)})", file=out)
    return EXIT_OK if wanted_help else EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
