"""The one error type of the I/O layer: the trust boundary's (`vda_lightning.trust.ReadError`)."""
from __future__ import annotations

from ..trust.errors import ReadError

__all__ = ["ReadError"]
