"""The one error type of the trust boundary (and of the I/O layer above it: `vda_lightning.io.ReadError`)."""
from __future__ import annotations


class ReadError(ValueError):
    """Input that cannot be used as asked; the message is one line naming the file (or value) and the cause."""
