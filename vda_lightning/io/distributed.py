"""The one rank / world-size helper and the one gather across ranks (torch imported on first use).

They sit in io/ because data loading, the training evaluator and `vda eval` all need them: every package above
io/ can reach them without reaching up into another.
"""
from __future__ import annotations

import os
from typing import Any


def rank_world(from_environment: bool = False) -> tuple[int, int]:
    """(rank, world size) of this process.

    torch.distributed's when a process group is up. Without one: the launcher's `RANK` / `WORLD_SIZE` when
    `from_environment` (data loading set up before the group exists: torchrun and Lightning export them first),
    else (0, 1) — code that then talks to the group (gathers, reductions) must not assume peers that never joined.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if from_environment:
        return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    return 0, 1


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order (just `[obj]` without a process group)."""
    rank, world = rank_world()
    if world == 1:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * world
    dist.all_gather_object(out, obj)
    return out
