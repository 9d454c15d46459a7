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


def launch_rank_world(env: dict[str, str] | None = None) -> tuple[int, int, int]:
    """(rank, world size, local rank) that a launcher gave this process, read from its environment (pure: `env`
    defaults to os.environ), for work that shares inputs without a process group (`vda infer`, `vda pseudolabel`).

    torchrun (and Lightning's launcher) export RANK / WORLD_SIZE / LOCAL_RANK. `srun` exports SLURM_PROCID /
    SLURM_LOCALID and, inside a job step, SLURM_STEP_NUM_TASKS: the batch shell of an sbatch script has
    SLURM_NTASKS (the allocation's) but no step, and it is one process, so it counts as (0, 1, 0). With
    VDA_SHARD_OVER_ARRAY=1 (written by `vda submit --array-size K`) the tasks of a SLURM job array share the inputs
    too: array task a (of SLURM_ARRAY_TASK_COUNT, numbered from SLURM_ARRAY_TASK_MIN) runs ranks a*world .. ."""
    env = os.environ if env is None else env
    if "RANK" in env and "WORLD_SIZE" in env:
        rank, world, local = int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0))
    elif "SLURM_PROCID" in env and "SLURM_STEP_NUM_TASKS" in env:
        rank, world = int(env["SLURM_PROCID"]), int(env["SLURM_STEP_NUM_TASKS"])
        local = int(env.get("SLURM_LOCALID", 0))
    else:
        rank, world, local = 0, 1, 0
    if env.get("VDA_SHARD_OVER_ARRAY") == "1" and "SLURM_ARRAY_TASK_ID" in env:
        first = int(env.get("SLURM_ARRAY_TASK_MIN", 0))
        count = int(env.get("SLURM_ARRAY_TASK_COUNT", int(env.get("SLURM_ARRAY_TASK_MAX", first)) - first + 1))
        task = int(env["SLURM_ARRAY_TASK_ID"]) - first
        rank, world = task * world + rank, count * world
    if not 0 <= rank < world:
        raise ValueError(f"launcher environment: rank {rank} is not in 0..{world - 1}")
    return rank, world, local
