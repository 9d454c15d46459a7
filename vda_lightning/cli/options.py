"""The options every model-running command shares, declared once: checkpoint, encoder, device, precision, input size.

Used by `vda infer`, `vda eval`, `vda bench infer`, `vda pseudolabel` and `vda export` (`add_model_kind`:
`vda infer`, `vda eval`). Importing this module is
cheap (it is on the path of every `--help`): the encoder choices come from the model registry
`models/configs.MODEL_CONFIGS` (plain Python), and torch is imported only when a device is resolved.

    p = argparse.ArgumentParser(prog=prog, formatter_class=HelpFormatter)
    add_checkpoint(p); add_encoder(p); add_device(p); add_precision(p); add_input_size(p)
    ...
    device = resolve_device(args.device)                  # CommandError (exit 2) for cuda without a GPU
    precision = resolve_precision(args.precision, device)
"""
from __future__ import annotations

import argparse
import copy

from ..models.configs import MODEL_CONFIGS
from ..models.input_contract import DEFAULT_INPUT_SIZE, PATCH_SIZE, is_multiple_size, multiples_around
from .errors import CommandError

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "fp16", "bf16")  # the dtypes behind them: inference/runtime.PRECISIONS


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's own line breaks and appends `(default: X)` to every option whose default is a value
    (not None/False/empty) and whose help does not already state its default (an option without help still shows
    its default)."""

    @staticmethod
    def _shows_default(action: argparse.Action) -> bool:
        default = action.default
        if default is None or default is False or default is argparse.SUPPRESS or default == []:
            return False
        return bool(action.option_strings) or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE)

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and self._shows_default(action):
            action = copy.copy(action)
            action.help = "(default: %(default)s)"
        return super()._format_action(action)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if self._shows_default(action) and "default" not in text.lower():
            text += " (default: %(default)s)"
        return text


def comma_list(choices, what: str):
    """argparse type: a comma list of `choices` (at least one) -> list[str]; the error names `what`."""

    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"{what} takes a comma list of {','.join(choices)}; got {text!r}")
        return items

    return parse


def positive_int(text: str) -> int:
    """argparse type: an integer > 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def input_size(text: str) -> int:
    """argparse type of `--input-size`: a positive multiple of the patch size 14.

    Chosen over rounding with a notice: the published code accepts any value and silently runs at the next
    multiple of 14 (its resize rounds each side up to one), so `--input-size 100` meant 112; refusing says so and
    names both neighbours.
    """
    value = positive_int(text)
    if not is_multiple_size((value,)):
        low, high = multiples_around(value)
        near = f"{low} or {high}" if low else f"{high}"
        raise argparse.ArgumentTypeError(f"{value} is not a multiple of {PATCH_SIZE} (the ViT patch size); use {near}")
    return value


def encoder_names() -> list[str]:
    """The encoders of the model registry, in its order (vits, vitb, vitl, ...)."""
    return list(MODEL_CONFIGS)


def add_checkpoint(parser, *, flag: str = "--checkpoint", required: bool = True, type=str,
                   help: str = "model weights: published .pth, safetensors, or a vda fit checkpoint") -> None:
    """`flag` without dashes makes it a positional argument (always required)."""
    extra = {"required": required} if flag.startswith("-") else {}
    parser.add_argument(flag, type=type, metavar="CKPT", help=help, **extra)


def add_encoder(parser, *, flag: str = "--encoder", default: str | None = "auto", help: str | None = None) -> None:
    """Choices from the model registry; with default "auto" the size is read from the checkpoint."""
    choices = (["auto"] if default == "auto" else []) + encoder_names()
    parser.add_argument(flag, default=default, choices=choices,
                        help=help or ("encoder size (auto: from the checkpoint)" if default == "auto"
                                      else "encoder size"))


def add_device(parser, *, flag: str = "--device", default: str = "auto",
               help: str = "auto: cuda when a GPU is visible, else cpu") -> None:
    parser.add_argument(flag, default=default, choices=DEVICES, help=help)


def add_precision(parser, *, default: str | None = None, help: str | None = None) -> None:
    """default None = per device: fp16 autocast on CUDA (the published default), fp32 on the CPU."""
    parser.add_argument("--precision", default=default, choices=PRECISIONS,
                        help=help or ("fp16/bf16: autocast; fp32: none" + (
                            " (default: fp16 on CUDA, as published; fp32 on the CPU)" if default is None else "")))


def add_input_size(parser, *, flag: str = "--input-size", default: int = DEFAULT_INPUT_SIZE,
                   help: str = "short side seen by the network (published: 518)") -> None:
    parser.add_argument(flag, type=input_size, default=default, metavar="PIXELS", help=help + ", a multiple of 14")


def add_model_kind(parser) -> None:
    """`--metric` / `--relative`: what the checkpoint predicts, overriding what the file says (dest `metric`:
    None = as the file says; see `vda_lightning.checkpoints.kind`)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--metric", dest="metric", action="store_true", default=None,
                       help="the checkpoint predicts metric depth in metres (overrides the file's metadata/name)")
    group.add_argument("--relative", dest="metric", action="store_false", default=None,
                       help="the checkpoint predicts relative disparity (overrides the file's metadata/name)")


def encoder_or_none(choice: str | None) -> str | None:
    """--encoder auto -> None (load_model reads the size from the file)."""
    return None if choice in (None, "auto") else choice


def resolve_device(choice: str):
    """`--device` -> torch.device: auto picks cuda when available (inference/runtime.resolve_device, the one rule);
    an explicit cuda without a GPU is an input error, not a traceback later."""
    import torch

    from ..inference.runtime import resolve_device as runtime_device

    device = runtime_device(choice)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CommandError("--device cuda: no CUDA device is available")
    return device


def resolve_precision(choice: str | None, device) -> str:
    """`--precision` left unset -> fp16 on CUDA (the published default), fp32 elsewhere (inference/runtime.py)."""
    from ..inference.runtime import default_precision

    return choice or default_precision(device)
