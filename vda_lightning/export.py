"""`vda-export CKPT --format pth|safetensors [--output PATH] [--ema]`: a training checkpoint -> the full model
in the published key layout (`pretrained.*` + `head.*`), loadable by `load_model` and by the published code."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def export_checkpoint(ckpt: str | Path, fmt: str = "safetensors", output: str | Path | None = None,
                      use_ema: bool = False) -> Path:
    """Write the model of a vda-fit checkpoint (encoder restored from its reference when not embedded).

    use_ema: write the head's EMA (`checkpoint["vda_ema"]`, saved by `training.ema.EMACallback`), put into the
    model by the same `HeadEMA.swapped_in` that validation uses.
    """
    from contextlib import nullcontext

    from .checkpoints import load_model, read_checkpoint, save_model
    from .training.ema import CHECKPOINT_KEY, HeadEMA

    if fmt not in ("pth", "safetensors"):
        raise ValueError(f"--format must be pth or safetensors, got {fmt!r}")
    ckpt = Path(ckpt)
    model = load_model(ckpt)
    swap = nullcontext()
    if use_ema:
        obj, _ = read_checkpoint(ckpt)
        state = obj.get(CHECKPOINT_KEY) if isinstance(obj, dict) else None
        if not state:
            raise ValueError(f"{ckpt}: holds no EMA weights (train with model.ema_decay set)")
        if not isinstance(state, dict) or not {"decay", "shadow"} <= set(state):
            raise ValueError(f"{ckpt}: its {CHECKPOINT_KEY!r} entry is not an EMA state {{decay, shadow}}")
        try:
            swap = HeadEMA.from_state(model.head, state).swapped_in(model.head)
        except ValueError as e:
            raise ValueError(f"{ckpt}: {e}") from None
    output = Path(output) if output else ckpt.with_name(ckpt.stem + (".ema" if use_ema else "") + f".{fmt}")
    if output.suffix != f".{fmt}":
        raise ValueError(f"{output}: the file name must end in .{fmt} for --format {fmt}")
    with swap:
        return save_model(model, output)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="vda-export", description=__doc__)
    parser.add_argument("checkpoint", help="a vda-fit checkpoint (.ckpt), or any file load_model reads")
    parser.add_argument("--format", choices=("pth", "safetensors"), default="safetensors")
    parser.add_argument("--output", "-o", default=None, help="output file (default: beside the checkpoint)")
    parser.add_argument("--ema", action="store_true", help="export the EMA head weights")
    args = parser.parse_args(argv)
    from .checkpoints import CheckpointError

    try:
        path = export_checkpoint(args.checkpoint, args.format, args.output, args.ema)
    except (CheckpointError, ValueError) as e:
        sys.exit(f"vda-export: {e}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
