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

Option values come from outside too (docs/reliability.md): the argparse types here refuse what cannot be meant
(`positive_float`: a focal length of nan, inf, 0 or less; `frame_count`: `--max-len 0`; `frame_rate`: a
non-finite `--target-fps`) with argparse's usage line and status 2, before anything is loaded.
"""
from __future__ import annotations

import argparse
import copy
import math

from ..models.configs import MODEL_CONFIGS
from ..models.input_contract import DEFAULT_INPUT_SIZE, PATCH_SIZE, is_multiple_size, multiples_around
from .errors import CommandError

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "fp16", "bf16")  # the dtypes behind them: devices.PRECISIONS


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


def _number(text: str, what: str) -> float:
    """`text` as a finite float, else an argparse error that says what was expected (`what`)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(value):  # nan, inf: float() accepts them, no camera or frame rate is either
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (a focal length: `--focal-length-x nan` wrote all-NaN point clouds)."""
    value = _number(text, "a finite number > 0")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


MAX_FPS = 1e6  # an mp4 time base (int32 rationals) holds rates far above any camera's; 1e300 overflowed it


def frame_rate(text: str) -> float:
    """argparse type of `--target-fps`: a finite number <= MAX_FPS; <= 0 keeps every frame (the published -1)."""
    value = _number(text, f"a frame rate (a finite number <= {MAX_FPS:g}; <= 0: every frame)")
    if value > MAX_FPS:
        raise argparse.ArgumentTypeError(f"expected a frame rate <= {MAX_FPS:g}, got {text!r}")
    return value


def frame_count(text: str) -> int:
    """argparse type of `--max-len`: a number of frames >= 1, or -1 for all of them.

    0 is refused rather than given a meaning: it used to run the model on nothing and end in "contains no
    frames", which blamed the input for the option.
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of frames >= 1 (or -1: all), got {text!r}") from None
    if value == 0 or value < -1:
        raise argparse.ArgumentTypeError(f"expected a number of frames >= 1 (or -1: all), got {text!r}")
    return value


PATCHES = (PATCH_SIZE, 16)  # the patches of the supported backbones: DINOv2 (14), DINOv3 (16)


def input_size(text: str) -> int:
    """argparse type of `--input-size`: a positive multiple of the patch size 14 (or of 16, a DINOv3 backbone's
    patch: the model's contract rounds it to its own patch, models/input_contract.py).

    Chosen over rounding with a notice: the published code accepts any value and silently runs at the next
    multiple of 14 (its resize rounds each side up to one), so `--input-size 100` meant 112; refusing says so and
    names both neighbours.
    """
    value = positive_int(text)
    if not any(is_multiple_size((value,), p) for p in PATCHES):
        low, high = multiples_around(value)
        near = f"{low} or {high}" if low else f"{high}"
        raise argparse.ArgumentTypeError(f"{value} is not a multiple of {PATCH_SIZE} (the ViT patch size); use {near}")
    return value


def encoder_names() -> list[str]:
    """The encoders of the model registry, in its order (vits, vitb, vitl, ...)."""
    return list(MODEL_CONFIGS)


def encoder_name(text: str) -> str:
    """argparse type of `--encoder`: a registry size or a timm DINOv2 / DINOv3 ViT name (models/backbones.py)."""
    from ..models.configs import ENCODER_HELP, is_encoder_name

    if text != "auto" and not is_encoder_name(text):
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(encoder_names())} or a "
                                         f"timm name: {ENCODER_HELP})")
    return text


def add_checkpoint(parser, *, flag: str = "--checkpoint", required: bool = True, type=str,
                   help: str = "model weights: published .pth, safetensors, or a vda fit checkpoint") -> None:
    """`flag` without dashes makes it a positional argument (always required)."""
    extra = {"required": required} if flag.startswith("-") else {}
    parser.add_argument(flag, type=type, metavar="CKPT", help=help, **extra)


def add_encoder(parser, *, flag: str = "--encoder", default: str | None = "auto", help: str | None = None) -> None:
    """The model registry's sizes or a timm backbone name; with default "auto" the size is read from the checkpoint."""
    names = "{" + ",".join((["auto"] if default == "auto" else []) + encoder_names()) + "}"  # as argparse shows choices
    parser.add_argument(flag, default=default, type=encoder_name, metavar=names,
                        help=help or ("encoder size (auto: from the checkpoint) or a timm DINOv2 / DINOv3 name"
                                      if default == "auto" else "encoder size or a timm DINOv2 / DINOv3 name"))


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
    parser.add_argument(flag, type=input_size, default=default, metavar="PIXELS",
                        help=help + ", a multiple of the patch: 14 (16 for DINOv3)")


def add_model_kind(parser) -> None:
    """`--metric` / `--relative`: what the checkpoint predicts where the file does not record it (dest `metric`:
    None = as the file says; see `vda_lightning.checkpoints.kind`); apply them with `load_model_kind`."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--metric", dest="metric", action="store_true", default=None,
                       help="the checkpoint predicts metric depth in metres (overrides a published file name; a "
                            "file whose metadata says relative is refused)")
    group.add_argument("--relative", dest="metric", action="store_false", default=None,
                       help="the checkpoint predicts relative disparity (overrides a published file name; a file "
                            "whose metadata says metric is refused)")


def load_model_kind(checkpoint, encoder: str | None, metric: bool | None, *, expect: str = "video"):
    """`load_model` with `--metric/--relative` (`metric`) applied where the file does not say otherwise.

    The flag overrides a published file name and stands in for a file that says nothing; it does not override
    the checkpoint's own metadata (`kind_source == "metadata"`: our config, safetensors metadata or sidecar):
    `--metric` on a file that records a relative model ran without a word (issue 24) and is now a CommandError
    naming the file and what its metadata says. The kind of a video checkpoint is its config alone (the same
    weights either way: `checkpoints.kind.set_kind`); image checkpoints, whose Depth Anything V2 metric head is
    folded at load, are refused by expect="video".
    """
    from .. import load_model
    from ..checkpoints.kind import set_kind

    model = load_model(checkpoint, encoder=encoder, metric=None, expect=expect)
    if metric is None:
        return model
    if bool(model.config.metric) != metric and getattr(model, "kind_source", "none") == "metadata":
        raise metadata_refusal(checkpoint, bool(model.config.metric), metric)
    if expect == "video":
        return set_kind(model, metric, "argument")
    return load_model(checkpoint, encoder=encoder, metric=metric, expect=expect)  # image files: the head differs


def metadata_refusal(checkpoint, recorded: bool, metric: bool) -> CommandError:
    """The error for `--metric`/`--relative` (`metric`) against the kind a file's metadata records (`recorded`);
    also raised before the load, from the metadata alone (inference/preflight.py)."""
    from ..trust.paths import display

    says = "a metric depth" if recorded else "a relative disparity"
    flag = "--metric" if metric else "--relative"
    return CommandError(f"{display(checkpoint)}: its metadata says it is {says} model; {flag} cannot override "
                        f"what the file records (it stands in only for a file that does not say): drop {flag}")


def encoder_or_none(choice: str | None) -> str | None:
    """--encoder auto -> None (load_model reads the size from the file)."""
    return None if choice in (None, "auto") else choice


def resolve_device(choice: str):
    """`--device` -> torch.device: auto picks cuda when available (devices.resolve_device, the one rule);
    an explicit cuda without a GPU is an input error, not a traceback later."""
    import torch

    from ..devices import resolve_device as runtime_device  # imports torch: not on the `--help` path

    device = runtime_device(choice)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CommandError("--device cuda: no CUDA device is available")
    return device


def resolve_precision(choice: str | None, device) -> str:
    """`--precision` left unset -> fp16 on CUDA (the published default), fp32 elsewhere (devices.py)."""
    from ..devices import default_precision

    return choice or default_precision(device)
