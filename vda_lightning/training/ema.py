"""Exponential moving average of the trainable (head) weights."""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn as nn


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
        """Temporarily load the averaged weights into `module` (e.g. for validation or export)."""
        params = dict(module.named_parameters())
        backup = {n: params[n].detach().clone() for n in self.names}
        with torch.no_grad():
            for n in self.names:
                params[n].copy_(self.shadow[n])
        try:
            yield module
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
