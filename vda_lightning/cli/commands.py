"""The one table of commands: every `vda <command>` and every `vda bench <what>`, each named by the
"module:function" it runs (pyproject's [project.scripts] form), imported only when that command runs.

`vda` (cli/__init__.py) and `vda bench` (bench/__init__.py) both read `COMMANDS` and run an entry with `run`;
`load` resolves any "module:function" (also `vda export`'s format writers), so nothing heavy is imported before a
command is chosen and `--help` stays torch-free. A new command is one entry here (and, for an alias, one line in
pyproject's scripts, which tests/test_cli.py checks against `alias`).
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import EXIT_OK


@dataclass(frozen=True)
class Command:
    target: str   # "module:function": `function(argv, prog=...) -> int`
    summary: str  # one line for the command list of --help
    alias: str | None = None  # the `vda-*` console script running the same function, if any
    lightning: bool = False  # LightningCLI parses sys.argv itself (its prog comes from sys.argv[0])
    subcommands: Mapping[str, Command] = field(default_factory=dict, hash=False)  # `vda <command> <sub>`
    preflight: str | None = None  # "module:function": `function(argv, prog) -> int | None`, torch-free checks run
    #                               before `target`'s module is imported (an exit status stops the command there)

    @property
    def module(self) -> str:
        return self.target.split(":")[0]

    @property
    def function(self) -> str:
        return self.target.split(":")[1]


BENCH_COMMANDS: dict[str, Command] = {
    "infer": Command("vda_lightning.bench.infer:run_infer_bench", "long-video inference: frames/s and peak memory"),
    "data": Command("vda_lightning.bench.data:run_data_bench",
                    "shard decoding + augmentation: clips/s, MB/s per worker"),
    "train": Command("vda_lightning.bench.train:run_train_bench",
                     "training steps: clips/s and images/s per GPU beside the loader's clips/s"),
    "gpu": Command("vda_lightning.bench.gpu:run_gpu_check",
                   "the CUDA suite + every benchmark in one run: JSON + Markdown (CPU variant without a GPU)"),
    "speed": Command("vda_lightning.bench.speed:run_speed_bench",
                     "start-up, streaming and the CPU loop against the published code, in one run"),
    "startup": Command("vda_lightning.bench.startup:run_startup_bench",
                       "time to first depth against the published script; how fast refusals come"),
    "streaming": Command("vda_lightning.bench.streaming:run_streaming_bench",
                         "streaming per frame against offline per output frame and the published loop"),
}

COMMANDS: dict[str, Command] = {
    "fit": Command("vda_lightning.training.cli:main",
                   "train the head from a YAML recipe (LightningCLI; one GPU to multi-node DDP)", "vda-fit", True,
                   preflight="vda_lightning.training.preflight:check_fit"),
    "validate": Command("vda_lightning.training.cli:validate_main",
                        "validate a checkpoint on a recipe's validation data and print the table", None, True,
                        preflight="vda_lightning.training.preflight:check_validate"),
    "eval": Command("vda_lightning.evaluation.cli:main",
                    "zero-shot video-depth benchmarks: AbsRel, delta1, TAE as published", "vda-eval"),
    "infer": Command("vda_lightning.inference.cli:main",
                     "depth for long videos and frame folders (npz, src, vis, exr, png16, ply; run.py layout)",
                     "vda-infer"),
    "export": Command("vda_lightning.export:main",
                      "a checkpoint -> the published key layout (pth, safetensors), ONNX graphs or TensorRT engines",
                      "vda-export"),
    "shard": Command("vda_lightning.data.cli:main",
                     "datasets -> WebDataset shards; synthetic scenes; shard inspection", "vda-shard"),
    "prepare-benchmark": Command("vda_lightning.evaluation.prepare:main",
                                 "raw KITTI/Bonn/ScanNet/NYUv2/Sintel -> the published benchmark layout",
                                 "vda-prepare-benchmark"),
    "pseudolabel": Command("vda_lightning.training.pseudolabel:main",
                           "offline teacher pseudo-labels for image shards", "vda-pseudolabel"),
    "submit": Command("vda_lightning.cluster.submit:main",
                      "render and submit an sbatch script for a training run (requeue + resume)", "vda-submit"),
    "bench": Command("vda_lightning.bench:main",
                     "performance figures: inference, training, data; the GPU check", "vda-bench",
                     subcommands=BENCH_COMMANDS),
}


def load(target: str):
    """The object a "module:function" names, its module imported now."""
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def run(cmd: Command, prog: str, argv: list[str]) -> int:
    """Run `cmd` on `argv` with its usage and error lines saying `prog`; returns the exit status."""
    if cmd.preflight is not None:  # checks before weight: LightningCLI's module imports torch when imported
        status = load(cmd.preflight)(argv, prog)
        if status is not None:
            return int(status)
    function = load(cmd.target)
    if cmd.lightning:  # LightningCLI reads sys.argv (and warns when given both): hand it the command's own argv
        saved, sys.argv = sys.argv, [prog, *argv]
        try:
            return int(function(None) or EXIT_OK)
        finally:
            sys.argv = saved
    return int(function(argv, prog=prog) or EXIT_OK)
