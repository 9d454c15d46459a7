"""Device and precision: what `auto` means, the precision a device gets when none is asked for, and autocast by
precision name — one rule for the command line (`cli/options.py`), the runners (`inference/`) and the benches.

It stands on the floor below everything that runs a model, so that the command-line options need not reach up
into inference/ for it. Importing it imports torch: the torch-free `--help` path imports it inside functions.
"""
from __future__ import annotations

import contextlib

import torch

PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def default_precision(device: torch.device) -> str:
    """The precision when none is asked for: fp16 autocast on CUDA (the published default), fp32 elsewhere (the
    published script would autocast on the CPU too, in bfloat16; we keep CPU results exact)."""
    return "fp16" if torch.device(device).type == "cuda" else "fp32"


def autocast(device: torch.device, precision: str):
    """fp32: nothing; fp16/bf16: torch autocast on the device (the published default is CUDA fp16)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
