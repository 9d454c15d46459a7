"""Exponential moving average of the trainable (head) weights: the averaging itself and the callback that runs it.

`HeadEMA.swapped_in(head)` is the one way averaged weights enter a model — validation (through `EMACallback`) and
`vda-export --ema` both use it — and it always puts the training weights back, whatever happens inside.
"""
from __future__ import annotations

from contextlib import ExitStack, contextmanager

import torch
import torch.nn as nn
from lightning.pytorch import Callback

CHECKPOINT_KEY = "vda_ema"  # checkpoint["vda_ema"] = {"decay", "shadow": {head parameter name: tensor}}
HEAD_PREFIX = "model.head."


class HeadEMA:
    """Keeps `shadow = decay * shadow + (1 - decay) * param` for every trainable parameter of `module`.

    Not an nn.Module on purpose: the shadow must not enter the model's state dict (checkpoints store it apart).
    """

    def __init__(self, module: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.names = [n for n, p in module.named_parameters() if p.requires_grad]
        params = dict(module.named_parameters())
        self.shadow = {n: params[n].detach().clone().float() for n in self.names}

    @classmethod
    def from_state(cls, module: nn.Module, state: dict) -> HeadEMA:
        """The EMA a checkpoint saved (`checkpoint["vda_ema"]`) over the parameters it names, for `module`."""
        params = dict(module.named_parameters())
        unknown = [n for n in state["shadow"] if n not in params]
        if unknown:
            raise ValueError(f"EMA state names {len(unknown)} parameters the model lacks, e.g. {unknown[0]}")
        ema = cls.__new__(cls)
        ema.names, ema.decay = list(state["shadow"]), float(state["decay"])
        ema.load_state_dict(state)
        return ema

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        params = dict(module.named_parameters())
        for n in self.names:
            p = params[n].detach()
            shadow = self.shadow[n]
            if shadow.device != p.device:
                shadow = self.shadow[n] = shadow.to(p.device)
            shadow.lerp_(p.float(), 1.0 - self.decay)

    @contextmanager
    def swapped_in(self, module: nn.Module):
        """Load the averaged weights into `module` for the block; yields the training weights it put aside."""
        params = dict(module.named_parameters())
        backup = {n: params[n].detach().clone() for n in self.names}
        try:
            with torch.no_grad():
                for n in self.names:
                    params[n].copy_(self.shadow[n])
            yield backup
        finally:
            with torch.no_grad():
                for n in self.names:
                    params[n].copy_(backup[n])

    def state_dict(self) -> dict:
        return {"decay": self.decay, "shadow": {n: t.cpu() for n, t in self.shadow.items()}}

    def load_state_dict(self, state: dict) -> None:
        missing = set(self.names) - set(state["shadow"])
        if missing:
            raise ValueError(f"EMA state lacks {len(missing)} parameters, e.g. {sorted(missing)[0]}")
        self.decay = float(state["decay"])
        self.shadow = {n: state["shadow"][n].clone().float() for n in self.names}


class EMACallback(Callback):
    """Updates the head's EMA after every training batch and validates with it.

    The swap is `HeadEMA.swapped_in`, held open from `on_validation_start` to `on_validation_end` and closed by
    `on_exception` / `teardown` too, so an error inside validation never leaves averaged weights in the model.
    A checkpoint written while the EMA is in place still stores the training weights. The shadow is saved in
    `checkpoint["vda_ema"]` (what `vda-export --ema` reads).
    """

    def __init__(self, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.ema: HeadEMA | None = None
        self._swap: ExitStack | None = None
        self._training_weights: dict | None = None

    def _head(self, pl_module) -> nn.Module:
        return pl_module.model.head

    def _ensure(self, pl_module) -> HeadEMA:
        if self.ema is None:
            self.ema = HeadEMA(self._head(pl_module), self.decay)
        return self.ema

    def setup(self, trainer, pl_module, stage: str) -> None:
        self._ensure(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._ensure(pl_module).update(self._head(pl_module))

    def on_validation_start(self, trainer, pl_module) -> None:
        self._restore()
        stack = ExitStack()
        self._training_weights = stack.enter_context(self._ensure(pl_module).swapped_in(self._head(pl_module)))
        self._swap = stack

    def _restore(self) -> None:
        if self._swap is not None:
            swap, self._swap, self._training_weights = self._swap, None, None
            swap.close()

    def on_validation_end(self, trainer, pl_module) -> None:
        self._restore()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._restore()

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self._restore()

    @property
    def active(self) -> bool:
        return self._swap is not None

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        if self.ema is None:
            return
        checkpoint[CHECKPOINT_KEY] = self.ema.state_dict()
        if self._training_weights is not None:  # saved mid-validation: the model holds the EMA right now
            state = checkpoint["state_dict"]
            for name, value in self._training_weights.items():
                state[HEAD_PREFIX + name] = value.detach().clone()

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        if CHECKPOINT_KEY in checkpoint:  # schema first (decay, this head's names, finite tensors of their shapes)
            from ..checkpoints import CheckpointError
            from ..checkpoints.metadata import ema_state

            head = dict(self._head(pl_module).named_parameters())
            state = ema_state(checkpoint[CHECKPOINT_KEY], trainer.ckpt_path or "the checkpoint", head, CheckpointError)
            self._ensure(pl_module).load_state_dict(state)
