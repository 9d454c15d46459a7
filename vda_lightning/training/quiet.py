"""Notices a new user of `vda fit` should not have to read past before the final table (issue 30), each silenced
by its own exact message, so every other warning still shows.

- Lightning's own `isinstance(treespec, LeafSpec)` deprecation: raised inside Lightning (utilities/_pytree.py)
  against the installed torch; nothing in our code can act on it.
- "Found N module(s) in eval mode at the start of training": the frozen DINOv2 encoder is in eval mode on purpose
  (the published recipe trains only the head); the model summary still lists the counts.
- Lightning's "Tip: ... litlogger" line: an advertisement printed whenever no LitLogger is attached.
The wandb "anonymous setting has no effect" warning is avoided at its source (dashboards/loggers.py).
"""
from __future__ import annotations

import logging
import warnings

NOISE_WARNINGS = (
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    r"Found \d+ module\(s\) in eval mode at the start of training",
)
LITLOGGER_TIP = "Tip: For seamless cloud logging"


class _DropLitLoggerTip(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return LITLOGGER_TIP not in record.getMessage()


def silence_known_noise() -> None:
    """Install the filters above (idempotent: adding the same filter twice is a no-op for both modules)."""
    for message in NOISE_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropLitLoggerTip) for f in logger.filters):
            logger.addFilter(_DropLitLoggerTip())
