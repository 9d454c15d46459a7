"""What `vda fit` does when it is told to stop: SIGTERM (and SIGUSR1 when no requeue callback is configured) saves a
checkpoint at the next optimizer-step boundary, logs it and exits non-zero (128 + the signal's number).

Lightning's own SIGTERM handling only sets `trainer.received_sigterm` and leaves the loop with a `SIGTERMException`
whose exit status is 0 and which saves nothing: a run stopped by a scheduler then looked finished and resumed from
its last periodic checkpoint (issue: step 30 when it had reached ~42). Here, as `cluster/requeue.py` does for
SIGUSR1, a handler only notes the signal; at the end of each optimizer step every rank all-reduces the note (so
all ranks stop at the same step), the checkpoint is saved collectively (rank 0 writes `<checkpoint folder>/last.ckpt`
atomically, so `--ckpt_path last` and `vda submit --find-checkpoint` both resume from it), and `SignalExit` ends
the run. A signal that lands while no step runs (validation, start-up) still stops the run with status 128 + n,
without a new checkpoint: `main` reports the newest one.

Who hears SIGTERM: Lightning installs its handler after `on_fit_start`, so `on_train_start` puts a gate in front
of it. While training batches run, the gate only notes the signal: Lightning's flag stays unset, so its loop
cannot end the run between our step-end check and its own (a SIGTERM in that gap once stopped a run without a
checkpoint). Outside training batches (in-loop validation, the epoch's end) the gate passes the signal on to
Lightning, whose loops then stop; a note still pending when training batches end is passed on at that moment.

Ctrl-C (SIGINT) is Lightning's: it ends fit/validate with `sys.exit(1)` after telling the callbacks; `SaveOnSignal`
notes it (`interrupted_by_ctrl_c`) so that `main` exits 130 with one line, as every vda command does.
"""
from __future__ import annotations

import logging
import os
import signal
import threading

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities.rank_zero import rank_zero_info

log = logging.getLogger(__name__)
CHECKPOINT_NAME = "last.ckpt"
_CTRL_C = {"seen": False}


def interrupted_by_ctrl_c() -> bool:
    """Whether Lightning stopped a fit/validate of this process on Ctrl-C (KeyboardInterrupt)."""
    return _CTRL_C["seen"]


class SignalExit(SystemExit):
    """Raised on every rank after the checkpoint is saved; the exit status is 128 + the signal's number."""

    def __init__(self, signum: int, path: str | None):
        super().__init__(128 + int(signum))
        self.signum, self.path = int(signum), path


def checkpoint_folder(trainer: Trainer) -> str:
    folder = getattr(trainer.checkpoint_callback, "dirpath", None) if trainer.checkpoint_callback else None
    return str(folder or os.path.join(trainer.default_root_dir, "checkpoints"))


class SaveOnSignal(Callback):
    """Save at the next step boundary and stop on SIGTERM (and on `extra_signals`, e.g. SIGUSR1 without requeue).

    `vda fit` adds it to every run (`training/cli.py`); SIGUSR1 is left to `RequeueOnSignal` when that is configured.
    """

    def __init__(self, extra_signals: tuple[str, ...] = ("SIGUSR1",)):
        self.extra = tuple(signal.Signals[s] for s in extra_signals)
        self.pending: int | None = None
        self._previous: dict[int, object] = {}
        self._lightning_sigterm = None  # the handler the gate passes SIGTERM on to outside training batches
        self._training = False
        self._passed_on = False  # Lightning hears a SIGTERM once (its handler broadcasts across ranks)

    def _note(self, signum, frame) -> None:
        self.pending = self.pending or int(signum)  # only a note: the work happens at the next step boundary

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        from ..cluster.requeue import RequeueOnSignal

        taken = {cb.signum for cb in trainer.callbacks if isinstance(cb, RequeueOnSignal)}  # it saves + requeues
        for sig in self.extra:
            if sig not in taken and sig not in self._previous and signal.getsignal(sig) in (signal.SIG_DFL, None):
                self._previous[sig] = signal.signal(sig, self._note)

    def _gate_sigterm(self, signum, frame) -> None:
        self.pending = self.pending or int(signum)
        if not self._training:
            self._pass_on(signum, frame)

    def _pass_on(self, signum, frame) -> None:
        if callable(self._lightning_sigterm) and not self._passed_on:
            self._passed_on = True
            self._lightning_sigterm(signum, frame)

    def _training_batches(self, running: bool) -> None:
        self._training = running
        if not running and self.pending == signal.SIGTERM:
            self._pass_on(signal.SIGTERM, None)  # noted in the gap after the last step check: Lightning stops

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Lightning's signal connector restores the handler it replaced when fit ends, which also removes the gate.
        if threading.current_thread() is threading.main_thread():
            self._lightning_sigterm = signal.signal(signal.SIGTERM, self._gate_sigterm)

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._training_batches(True)

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._training_batches(False)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._training_batches(not trainer.sanity_checking)  # an in-loop validation returns to the epoch's batches

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._training_batches(False)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt):
            _CTRL_C["seen"] = True

    def _received(self, trainer: Trainer) -> int:
        if self.pending:
            return self.pending
        return int(signal.SIGTERM) if trainer.received_sigterm else 0  # Lightning's SIGTERM handler's note

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int):
        if (batch_idx + 1) % trainer.accumulate_grad_batches:
            return  # mid-accumulation: partial gradients are not in a checkpoint; wait for the optimizer step
        note = torch.tensor(float(self._received(trainer)), device=pl_module.device)
        signum = int(float(trainer.strategy.reduce(note, reduce_op="max")))  # every rank stops at this step
        if not signum:
            return
        path = os.path.join(checkpoint_folder(trainer), CHECKPOINT_NAME)
        trainer.save_checkpoint(path, weights_only=False)  # collective; rank 0 writes atomically (CheckpointIO)
        name = signal.Signals(signum).name
        rank_zero_info(f"{name}: saved {path} at step {trainer.global_step}; resume with --ckpt_path last "
                       f"(exit status {128 + signum})")
        trainer.strategy.barrier("save-on-signal")
        raise SignalExit(signum, path)
