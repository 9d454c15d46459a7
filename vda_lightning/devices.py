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


_HOST_HEAP_KEPT = False


def keep_freed_host_memory() -> bool:
    """Ask glibc to serve large blocks from its heap and keep freed ones, so that a window's tensors reuse the
    pages of the last window's instead of fresh pages from the kernel (a page fault per 4 KiB: a vits window at
    280x504 allocates several GB; element-wise layers on fresh pages ran ~5x slower). Process-wide and once; the
    price is that freed memory stays with the process (its peak is kept). False where the C library is not glibc
    (musl, macOS, Windows): nothing changes there."""
    global _HOST_HEAP_KEPT
    if _HOST_HEAP_KEPT:
        return True
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    _HOST_HEAP_KEPT = bool(mallopt(m_mmap_threshold, 1 << 30)) and bool(mallopt(m_trim_threshold, 1 << 40))
    return _HOST_HEAP_KEPT
