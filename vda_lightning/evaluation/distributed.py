"""Multi-process evaluation: whole sequences per rank, metric states summed, per-scene rows gathered
(`io.gather_objects`).

`--devices N` spawns N local processes (gloo on CPU, nccl when N GPUs are visible); under torchrun/SLURM
(`WORLD_SIZE` > 1 in the environment) the existing process group settings are used instead.
"""
from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable

import torch
import torch.distributed as dist


def shard_indices(count: int, rank: int, world_size: int) -> range:
    """Round-robin split: every index exactly once, no padding (a padded sampler would count a sequence twice)."""
    return range(rank, count, world_size)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


KNOWN_ERRORS = (ValueError, OSError)  # input errors (BenchmarkError, ReadError, CheckpointError are ValueErrors)


class RankError(ValueError):
    """A known input error raised on one rank, re-raised in the launching process as one line."""


def _worker(rank: int, world_size: int, port: int, use_cuda: bool, fn: Callable, args: tuple, failures) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(rank)
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        fn(*args)
    except KNOWN_ERRORS as e:  # the launcher reports it in one line (cli/errors.py); the other ranks are stopped
        from ..cli.errors import describe

        failures.put(describe(e))
        sys.exit(2)
    finally:
        dist.destroy_process_group()


def launch(fn: Callable, world_size: int, args: tuple = ()) -> None:
    """Run `fn(*args)` in `world_size` processes joined in one process group (or in process when 1).

    A known input error on any rank (a NaN prediction, a missing file) ends every rank and is raised here as a
    `RankError` carrying that rank's one-line message; other failures keep torch's report with the traceback.
    """
    if world_size <= 1:
        fn(*args)
        return
    use_cuda = torch.cuda.is_available() and torch.cuda.device_count() >= world_size
    # CUDA cannot be forked; on the CPU, fork spares each rank re-importing torch and torchmetrics (seconds each).
    method = "spawn" if use_cuda else "fork"
    failures = torch.multiprocessing.get_context(method).SimpleQueue()
    try:
        torch.multiprocessing.start_processes(_worker, args=(world_size, _free_port(), use_cuda, fn, args, failures),
                                              nprocs=world_size, join=True, start_method=method)
    except torch.multiprocessing.ProcessExitedException:
        if failures.empty():
            raise
        raise RankError(failures.get()) from None


def init_from_environment() -> bool:
    """Join a process group described by torchrun-style variables; False when there is none."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or (dist.is_available() and dist.is_initialized()):
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend)
    return True


def device_for_rank() -> torch.device:
    if dist.is_available() and dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
