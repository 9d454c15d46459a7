"""`vda bench {infer,data} ...` (alias `vda-bench`): performance figures, printed and written as JSON (never timed
tests)."""
from __future__ import annotations

import importlib
import sys

from ..cli.errors import EXIT_OK, EXIT_USAGE

PROG = "vda-bench"
COMMANDS = {
    "infer": ("vda_lightning.bench.infer", "run_infer_bench", "long-video inference: frames/s and peak memory"),
    "data": ("vda_lightning.bench.data", "run_data_bench", "shard decoding + augmentation: clips/s, MB/s per worker"),
}


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        wanted_help = bool(argv) and argv[0] in ("-h", "--help")
        out = sys.stdout if wanted_help else sys.stderr
        print(f"usage: {prog} {{{','.join(COMMANDS)}}} [options]   ({prog} <command> --help for its options)",
              file=out)
        for name, (_, _, what) in COMMANDS.items():
            print(f"  {name:6s} {what}", file=out)
        if argv and not wanted_help:
            print(f"{prog}: error: unknown command {argv[0]!r} (choose from {', '.join(COMMANDS)})", file=out)
        return EXIT_OK if wanted_help else EXIT_USAGE
    module, func, _ = COMMANDS[argv[0]]
    return int(getattr(importlib.import_module(module), func)(argv[1:], prog=f"{prog} {argv[0]}") or EXIT_OK)


if __name__ == "__main__":
    sys.exit(main())
