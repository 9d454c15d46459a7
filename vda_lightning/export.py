"""`vda export CKPT --format pth|safetensors|onnx|tensorrt|hub [--output PATH | OUT] [--ema]` (alias `vda-export`): a
training checkpoint -> the full model in the published key layout (`pretrained.*` + `head.*`), loadable by
`load_model` and by the published code; or ONNX graphs with sidecars / TensorRT engines (docs/deploy.md); or a Hub
model folder, pushed with `--push-to-hub ORG/NAME` (`checkpoints/hub_format.py`, docs/models.md). CKPT may be a Hub
name (`hf://...`, `vda-small`): outputs then default to the current folder, not the Hugging Face cache.

Formats come from the `FORMATS` table: a new one is one entry, a writer `write(model, path, **options) -> Path`
named by "module:function" (resolved by `cli.commands.load`, as commands are) so that `vda export --help` imports
none of it.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from .cli import errors
from .cli.commands import load
from .cli.options import HelpFormatter, add_checkpoint

PROG = "vda-export"


@dataclass(frozen=True)
class ExportFormat:
    suffix: str   # the output file's required suffix
    writer: str   # "module:function" with `function(model, path) -> Path`
    summary: str  # one line for --help
    options: str | None = None  # "module:function(parser)" adding the format's options; its writer then takes
    #                             `source=` (the checkpoint) and those options as keywords
    video_only: bool = False  # refuse image (Depth Anything V2) checkpoints
    image_only: bool = False  # the image model (load_model expect="image"); its writer gets `source=` to refuse video
    values: str | None = None  # "module:function(args) -> dict": the writer's keyword options from parsed options
    folder: bool = False  # several files: the default output goes into a folder of its own


FORMATS: dict[str, ExportFormat] = {
    "safetensors": ExportFormat(".safetensors", "vda_lightning.checkpoints:save_model",
                                "published key layout, config in the metadata"),
    "pth": ExportFormat(".pth", "vda_lightning.checkpoints:save_model",
                        "published key layout as a torch state dict (+ .json config sidecar)"),
    "onnx": ExportFormat(".onnx", "vda_lightning.deploy.commands:write_onnx",
                         "ONNX graphs + JSON sidecars (--parts, --streaming, --fp16)",
                         "vda_lightning.deploy.commands:add_export_options", video_only=True, folder=True,
                         values="vda_lightning.deploy.commands:onnx_options"),
    "tensorrt": ExportFormat(".engine", "vda_lightning.deploy.commands:write_tensorrt",
                             "TensorRT engines from the ONNX graphs (needs tensorrt and CUDA)",
                             "vda_lightning.deploy.commands:add_export_options", video_only=True, folder=True,
                             values="vda_lightning.deploy.commands:onnx_options"),
    "hub": ExportFormat("", "vda_lightning.checkpoints.hub_format:write_hub",
                        "a Hub model folder: model.safetensors + config.json + README.md (--push-to-hub)",
                        "vda_lightning.checkpoints.hub_format:add_hub_options", folder=True,
                        values="vda_lightning.checkpoints.hub_format:hub_options"),
    "transformers": ExportFormat("", "vda_lightning.checkpoints.transformers:write_transformers",
                                 "transformers' DepthAnythingForDepthEstimation folder: model.safetensors + "
                                 "config.json (Depth Anything V2 image models)", folder=True, image_only=True),
}


def check_output(output: str | Path, fmt: str) -> None:
    """ValueError when `output` cannot be what --format `fmt` writes: a file whose name ends in the format's suffix
    (and is not a folder), or a folder (not an existing file)."""
    from .trust import display

    spec, output = FORMATS[fmt], Path(output)
    if spec.suffix and output.suffix != spec.suffix:
        raise ValueError(f"{display(output)}: the file name must end in {spec.suffix} for --format {fmt}")
    if spec.suffix and output.is_dir():
        raise ValueError(f"{display(output)}: is a folder; --format {fmt} writes a file here")
    if not spec.suffix and output.exists() and not output.is_dir():
        raise ValueError(f"{display(output)}: is a file; --format {fmt} writes a folder here")


def check_export(ckpt: str | Path, fmt: str, output: str | Path | None = None, use_ema: bool = False) -> None:
    """Everything an export can refuse before torch is imported (issue 28, checks before weight): the format, --ema
    against it, the output path given, and the checkpoint (`cli.preflight.checked_weights`: a regular readable file
    that holds weights; a Hub name is the load's to fetch). ValueError / CheckpointError, one line."""
    from .cli.preflight import checked_weights

    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if use_ema and FORMATS[fmt].image_only:
        raise ValueError(f"--ema exports a trained video head; --format {fmt} takes a Depth Anything V2 image model")
    if output is not None:
        check_output(output, fmt)
    checked_weights(ckpt)


def export_checkpoint(ckpt: str | Path, fmt: str = "safetensors", output: str | Path | None = None,
                      use_ema: bool = False, options: dict | None = None) -> Path:
    """Write the model of a vda-fit checkpoint (encoder restored from its reference when not embedded).

    use_ema: write the head's EMA (`checkpoint["vda_ema"]`, saved by `training.ema.EMACallback`), put into the
    model by the same `HeadEMA.swapped_in` that validation uses. `options`: the keyword options of formats that
    have them (onnx, tensorrt).
    """
    check_export(ckpt, fmt, output, use_ema)  # torch-free: a mistake is one line before anything is imported
    from contextlib import nullcontext

    from .checkpoints import CheckpointError, checkpoint_path, is_hub_name, load_model, read_checkpoint
    from .checkpoints.metadata import ema_state
    from .training.ema import CHECKPOINT_KEY, HeadEMA
    from .trust import display

    name, ckpt = ckpt, checkpoint_path(ckpt)  # a Hub name: the cached file (loaded, hashed, named)
    model = load_model(ckpt, expect="video" if FORMATS[fmt].video_only else "image" if FORMATS[fmt].image_only
                       else "any")
    swap = nullcontext()
    if use_ema:
        obj, _ = read_checkpoint(ckpt)
        if obj.get(CHECKPOINT_KEY) is None:
            raise CheckpointError(f"{display(ckpt)}: holds no EMA weights (train with model.ema_decay set)")
        # schema first: a decay in (0, 1), names of this head only, finite tensors of their parameters' shapes
        state = ema_state(obj[CHECKPOINT_KEY], ckpt, dict(model.head.named_parameters()), CheckpointError)
        swap = HeadEMA.from_state(model.head, state).swapped_in(model.head)
    spec = FORMATS[fmt]
    stem = ckpt.stem + (".ema" if use_ema else "")
    if output is None:  # beside the checkpoint (a Hub name's: here); several files in a folder of their own
        parent = Path(".") if is_hub_name(name) else ckpt.parent
        output = parent / f"{stem}_{fmt}" / f"model{spec.suffix}" if spec.folder and spec.suffix else \
            parent / f"{stem}_{fmt}" if spec.folder else parent / (stem + spec.suffix)
    output = Path(output)
    check_output(output, fmt)
    with swap:
        if spec.options or spec.image_only:
            return load(spec.writer)(model, output, source=ckpt, **(options or {}))
        return load(spec.writer)(model, output)


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    formats = "\n".join(f"  {name:<12} {f.summary}" for name, f in FORMATS.items())
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter,
                                     epilog=f"formats:\n{formats}")
    add_checkpoint(parser, flag="checkpoint", help="a vda fit checkpoint (.ckpt), or any file load_model reads")
    parser.add_argument("--format", choices=list(FORMATS), default="safetensors", help="output format")
    parser.add_argument("output_dir", nargs="?", default=None, metavar="OUT",
                        help="output (as --output; hub: the folder)")
    parser.add_argument("--output", "-o", default=None,
                        help="output file (default: beside the checkpoint; onnx/tensorrt: <stem>_<format>/model.*; "
                             "hub: the folder <stem>_hub)")
    parser.add_argument("--ema", action="store_true", help="export the EMA head weights")
    for option_adder in dict.fromkeys(f.options for f in FORMATS.values() if f.options):
        load(option_adder)(parser)
    return parser


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    parser = build_parser(prog)
    args = parser.parse_intermixed_args(argv)  # `CKPT --format hub OUT`: the positional after an option
    if args.output_dir is not None and args.output is not None:
        parser.error("give the output once: OUT or --output")
    output = args.output if args.output is not None else args.output_dir

    def export() -> None:
        check_export(args.checkpoint, args.format, output, args.ema)  # before a format's options import anything
        values = FORMATS[args.format].values
        options = load(values)(args) if values else None
        print(f"wrote {export_checkpoint(args.checkpoint, args.format, output, args.ema, options)}")

    from .checkpoints import CheckpointError

    return errors.run_command(prog, export, known=(CheckpointError, ValueError))


if __name__ == "__main__":
    sys.exit(main())
