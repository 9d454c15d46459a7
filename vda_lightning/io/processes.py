"""Worker processes that never outlive the command that started them.

A SIGKILL of the parent runs no handler and no `finally`, so the workers must notice on their own:
`die_with_parent` (a ProcessPoolExecutor initializer) asks Linux to SIGKILL the worker when its parent dies
(`prctl(PR_SET_PDEATHSIG)`, through ctypes) and, on every platform, starts a watcher thread that ends the worker
within `poll` seconds of the parent's death (its parent pid changes). The workers stay in the parent's process
group (fork/forkserver children inherit it), so `kill -- -PGID` and a terminal's Ctrl-C reach them too.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int, poll: float = 0.5) -> None:
    """Call first thing in a worker: end this process when `parent_pid` (the command) is gone."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no libc symbol: the watcher below still ends the worker
            pass
    ppid = os.getppid()  # the command itself (fork) or the forkserver it started

    def alive() -> bool:
        if os.getppid() != ppid:  # re-parented: our parent died
            return False
        try:
            os.kill(parent_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, owned by someone else: pid reused, the command is gone
            return False
        return True

    if not alive():  # the parent died before the death signal was armed
        os._exit(1)

    def watch() -> None:
        while alive():
            time.sleep(poll)
        os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()
