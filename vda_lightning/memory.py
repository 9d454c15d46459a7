"""This process's peak resident memory, measured so that a child started by a big parent reports its own.

`getrusage(RUSAGE_SELF).ru_maxrss` survives `exec`: a child forked from a 3 GiB test runner or benchmark driver
reports the parent's 3 GiB before doing anything. Linux's `VmHWM` belongs to the current address space, which
`exec` replaces, so it is the peak of this program alone; elsewhere ru_maxrss is the best there is.
"""
from __future__ import annotations

import resource
import sys


def peak_rss_mib() -> float:
    """Peak resident set size of this process image, in MiB."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # "VmHWM:   123456 kB"
    except (OSError, ValueError, IndexError):
        pass
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024.0  # macOS reports bytes, Linux KiB
