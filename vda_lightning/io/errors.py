"""The one error type of the I/O layer."""
from __future__ import annotations


class ReadError(ValueError):
    """A file that cannot be read as asked; the message is one line naming the file and the cause."""
