"""`vda <command> [options]`: one program for every job; `vda-<command>` scripts stay as aliases of the same code.

    vda fit --config conf/quickstart.yaml
    vda validate --config conf/quickstart.yaml --ckpt_path runs/quickstart/checkpoints/last.ckpt
    vda infer clip.mp4 --checkpoint model.safetensors --save npz,vis
    vda --help                          # every command with one line;  vda <command> --help: its options

Each command's module is imported only when that command runs, so `vda --help` and `vda <command> --help` start in
well under a second (fit and validate excepted: they are LightningCLI). Shared options: `cli/options.py`; error
lines and exit codes (0 ok, 1 some inputs failed, 2 usage or input error): `cli/errors.py`.
"""
from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass

from .errors import EXIT_OK, EXIT_USAGE, interrupted


@dataclass(frozen=True)
class Command:
    module: str
    function: str
    summary: str
    alias: str | None  # the `vda-*` console script running the same function, if any
    lightning: bool = False  # LightningCLI parses sys.argv itself (its prog comes from sys.argv[0])


COMMANDS: dict[str, Command] = {
    "fit": Command("vda_lightning.training.cli", "main",
                   "train the head from a YAML recipe (LightningCLI; one GPU to multi-node DDP)", "vda-fit", True),
    "validate": Command("vda_lightning.training.cli", "validate_main",
                        "validate a checkpoint on a recipe's validation data and print the table", None, True),
    "eval": Command("vda_lightning.evaluation.cli", "main",
                    "zero-shot video-depth benchmarks: AbsRel, delta1, TAE as published", "vda-eval"),
    "infer": Command("vda_lightning.inference.cli", "main",
                     "depth for long videos and frame folders (npz, src, vis, exr, png16, ply; run.py layout)",
                     "vda-infer"),
    "export": Command("vda_lightning.export", "main",
                      "a checkpoint -> the published key layout (pth, safetensors), ONNX graphs or TensorRT engines",
                      "vda-export"),
    "shard": Command("vda_lightning.data.cli", "main",
                     "datasets -> WebDataset shards; synthetic scenes; shard inspection", "vda-shard"),
    "prepare-benchmark": Command("vda_lightning.evaluation.prepare", "main",
                                 "raw KITTI/Bonn/ScanNet/NYUv2/Sintel -> the published benchmark layout",
                                 "vda-prepare-benchmark"),
    "pseudolabel": Command("vda_lightning.training.pseudolabel", "main",
                           "offline teacher pseudo-labels for image shards", "vda-pseudolabel"),
    "submit": Command("vda_lightning.cluster.submit", "main",
                      "render and submit an sbatch script for a training run (requeue + resume)", "vda-submit"),
    "bench": Command("vda_lightning.bench", "main",
                     "performance figures: inference, training, data; the GPU check", "vda-bench"),
}

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
        return _dispatch(COMMANDS[name], prog, rest)
    except KeyboardInterrupt:  # commands end their own work with 130; this covers imports and argument parsing
        return interrupted(prog)


def _dispatch(cmd: Command, prog: str, rest: list[str]) -> int:
    function = getattr(importlib.import_module(cmd.module), cmd.function)
    if cmd.lightning:  # LightningCLI reads sys.argv (and warns when given both): hand it the command's own argv
        saved, sys.argv = sys.argv, [prog, *rest]
        try:
            return int(function(None) or EXIT_OK)
        finally:
            sys.argv = saved
    return int(function(rest, prog=prog) or EXIT_OK)
