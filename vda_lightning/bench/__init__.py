"""`vda-bench {infer,data} ...`: performance figures, printed and written as JSON (never timed tests)."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {
        "infer": ("vda_lightning.bench.infer", "run_infer_bench", "long-video inference: frames/s and peak memory"),
        "data": ("vda_lightning.bench.data", "run_data_bench",
                 "shard decoding + augmentation: clips/s, MB/s per worker"),
    }
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        print("usage: vda-bench {infer,data} [options]   (vda-bench <command> --help for its options)")
        for name, (_, _, what) in commands.items():
            print(f"  {name:6s} {what}")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    module, func, _ = commands[argv[0]]
    import importlib

    return int(getattr(importlib.import_module(module), func)(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
