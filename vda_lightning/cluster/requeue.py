"""Requeue on a signal: save a checkpoint at a step boundary on every rank, then `scontrol requeue` the job.

Why not Lightning's own SLURM handler: it runs `trainer.save_checkpoint` (two DDP barriers) inside the signal
handler, i.e. wherever each rank happens to be — one rank may be inside a gradient all-reduce while the other
enters the barrier, which can hang or mismatch collectives. Here the handler only sets a flag; at the end of each
optimizer step all ranks all-reduce that flag (max) so they agree, save the same step together, and rank 0
requeues. Installing our handler in `setup` also keeps Lightning from installing its own for the same signal
(it skips signals that already have a handler).

After a successful requeue SLURM kills the job's steps (SIGTERM, SIGKILL after KillWait); we leave `fit` by
raising `RequeueExit` so nothing after it (final validation, result files) runs for an unfinished run.
"""
from __future__ import annotations

import logging
import os
import re
import signal
import subprocess

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities.rank_zero import rank_zero_info

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "requeue.ckpt"


class RequeueExit(SystemExit):
    """Raised on every rank once the checkpoint is saved (and the job requeued when under SLURM)."""


def slurm_job_id(env: dict | None = None) -> str | None:
    """The id `scontrol requeue` needs: `<array job>_<task>` for array jobs, else SLURM_JOB_ID; None outside SLURM."""
    env = os.environ if env is None else env
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        job = f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    else:
        job = env.get("SLURM_JOB_ID")
    if job is not None and not re.fullmatch(r"[0-9]+(_[0-9]+)?", job):
        raise ValueError(f"unexpected SLURM job id {job!r}")
    return job


class RequeueOnSignal(Callback):
    """Args:
        signal_name: the signal that announces preemption or the time limit (sbatch `--signal=USR1@<seconds>`).
        dirpath: where `requeue.ckpt` goes; default the ModelCheckpoint folder, else `<default_root_dir>/checkpoints`.
        requeue: call `scontrol requeue` (under SLURM). False: only save and stop.
    """

    def __init__(self, signal_name: str = "SIGUSR1", dirpath: str | None = None, requeue: bool = True):
        self.signum = signal.Signals[signal_name if signal_name.startswith("SIG") else "SIG" + signal_name]
        self.dirpath, self.requeue = dirpath, requeue
        self.pending = False
        self._previous = None

    def _on_signal(self, signum, frame) -> None:
        self.pending = True  # only a flag: the real work happens at the next step boundary, on every rank

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "fit" and self._previous is None:
            self._previous = signal.signal(self.signum, self._on_signal)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._previous is not None:
            signal.signal(self.signum, self._previous)
            self._previous = None

    def checkpoint_path(self, trainer: Trainer) -> str:
        folder = self.dirpath
        if folder is None and trainer.checkpoint_callback is not None:
            folder = getattr(trainer.checkpoint_callback, "dirpath", None)
        folder = folder or os.path.join(trainer.default_root_dir, "checkpoints")
        return os.path.join(folder, CHECKPOINT_NAME)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int):
        if (batch_idx + 1) % trainer.accumulate_grad_batches:
            return  # mid-accumulation: partial gradients are not in a checkpoint, wait for the optimizer step
        flag = torch.tensor(float(self.pending), device=pl_module.device)
        if float(trainer.strategy.reduce(flag, reduce_op="max")) == 0:
            return
        if 0 < trainer.max_steps <= trainer.global_step:
            # The signal landed on the last step: the run is done, so let it finish (its last.ckpt, final
            # validation and results) instead of requeueing a job with nothing left to do.
            rank_zero_info(f"{self.signum.name} at the final step {trainer.global_step}: finishing, not requeueing")
            self.pending = False
            return
        path = self.checkpoint_path(trainer)
        trainer.save_checkpoint(path)  # collective; rank 0 writes (atomically, through the CheckpointIO plugin)
        rank_zero_info(f"{self.signum.name}: saved {path} at step {trainer.global_step}")
        job = slurm_job_id() if self.requeue else None
        ok = True
        if job is not None and trainer.is_global_zero:
            result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
            ok = result.returncode == 0
            if ok:
                rank_zero_info(f"requeued SLURM job {job}; it resumes from {path}")
            else:
                log.error("scontrol requeue %s failed (%s): %s — resubmit to resume from %s",
                          job, result.returncode, result.stderr.strip(), path)
        trainer.strategy.barrier("requeue")
        raise RequeueExit(0 if ok else 3)
