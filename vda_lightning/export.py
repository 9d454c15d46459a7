"""`vda export CKPT --format pth|safetensors [--output PATH] [--ema]` (alias `vda-export`): a training checkpoint ->
the full model in the published key layout (`pretrained.*` + `head.*`), loadable by `load_model` and by the
published code.

Formats come from the `FORMATS` table: a new one (e.g. ONNX) is one entry, a writer `write(model, path) -> Path`
named by "module:function" so that `vda export --help` imports none of it.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path

from .cli import errors
from .cli.options import HelpFormatter, add_checkpoint

PROG = "vda-export"


@dataclass(frozen=True)
class ExportFormat:
    suffix: str   # the output file's required suffix
    writer: str   # "module:function" with `function(model, path) -> Path`
    summary: str  # one line for --help


FORMATS: dict[str, ExportFormat] = {
    "safetensors": ExportFormat(".safetensors", "vda_lightning.checkpoints:save_model",
                                "published key layout, config in the metadata"),
    "pth": ExportFormat(".pth", "vda_lightning.checkpoints:save_model",
                        "published key layout as a torch state dict (+ .json config sidecar)"),
}


def _writer(fmt: str):
    module, function = FORMATS[fmt].writer.split(":")
    return getattr(importlib.import_module(module), function)


def export_checkpoint(ckpt: str | Path, fmt: str = "safetensors", output: str | Path | None = None,
                      use_ema: bool = False) -> Path:
    """Write the model of a vda-fit checkpoint (encoder restored from its reference when not embedded)."""
    import torch

    from .checkpoints import load_model, read_checkpoint

    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    ckpt = Path(ckpt)
    model = load_model(ckpt)
    if use_ema:
        obj, _ = read_checkpoint(ckpt)
        ema = obj.get("vda_ema")
        if not ema:
            raise ValueError(f"{ckpt}: holds no EMA weights (train with model.ema_decay set)")
        params = dict(model.head.named_parameters())
        with torch.no_grad():
            for name, value in ema["shadow"].items():
                params[name].copy_(value)
    suffix = FORMATS[fmt].suffix
    output = Path(output) if output else ckpt.with_name(ckpt.stem + (".ema" if use_ema else "") + suffix)
    if output.suffix != suffix:
        raise ValueError(f"{output}: the file name must end in {suffix} for --format {fmt}")
    return _writer(fmt)(model, output)


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    formats = "\n".join(f"  {name:<12} {f.summary}" for name, f in FORMATS.items())
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter,
                                     epilog=f"formats:\n{formats}")
    add_checkpoint(parser, flag="checkpoint", help="a vda fit checkpoint (.ckpt), or any file load_model reads")
    parser.add_argument("--format", choices=list(FORMATS), default="safetensors", help="output format")
    parser.add_argument("--output", "-o", default=None, help="output file (default: beside the checkpoint)")
    parser.add_argument("--ema", action="store_true", help="export the EMA head weights")
    return parser


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(argv)

    def export() -> None:
        print(f"wrote {export_checkpoint(args.checkpoint, args.format, args.output, args.ema)}")

    from .checkpoints import CheckpointError

    return errors.run_command(prog, export, known=(CheckpointError, ValueError))


if __name__ == "__main__":
    sys.exit(main())
