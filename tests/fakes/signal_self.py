"""A test callback that sends its own process a signal at a chosen place of the fit loop (for signal tests).

`after_step_check`: in `on_train_batch_end` at global step `step`, i.e. after `SaveOnSignal` (which `vda fit` puts
first) has looked for a signal at that step and before Lightning's loop looks for one: the gap where a SIGTERM
once stopped a run without a checkpoint. `validation`: at the first validation batch after global step `step`.
"""
from __future__ import annotations

import os
import signal

from lightning.pytorch import Callback


class SignalSelf(Callback):
    def __init__(self, when: str, step: int, signal_name: str = "SIGTERM"):
        assert when in ("after_step_check", "validation"), when
        self.when, self.step, self.signum = when, step, signal.Signals[signal_name]
        self.sent = False

    def _send(self) -> None:
        self.sent = True
        os.kill(os.getpid(), self.signum)  # Python runs the handler before the next line of this thread

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.when == "after_step_check" and not self.sent and trainer.global_step == self.step:
            self._send()

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if self.when == "validation" and not self.sent and not trainer.sanity_checking \
                and trainer.global_step >= self.step:
            self._send()
