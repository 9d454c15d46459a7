"""Compressed members with a known decompressed size: the bytes are inflated only up to the size the caller
derived from checked metadata, so a small member cannot claim (and allocate) more than that.

LZ4 frames hold the shard format's `f16lz4` depth (data/README.md): per frame, the raw float16 values, row-major.
The frame's own content-size field is not trusted; the decompressor is asked for at most `size + 1` bytes.
"""
from __future__ import annotations

from .errors import ReadError


def lz4_frame_exact(buf: bytes, size: int, what: str, error: type[Exception] = ReadError) -> bytes:
    """The decompressed bytes of one LZ4 frame that must decompress to exactly `size` bytes (else `error`)."""
    import lz4.frame

    decompressor = lz4.frame.LZ4FrameDecompressor()
    try:
        out = decompressor.decompress(bytes(buf), max_length=size + 1)
    except RuntimeError as e:  # lz4 reports corrupt frames as RuntimeError with the library's message
        raise error(f"{what}: not a readable LZ4 frame ({' '.join(str(e).split())[:120]})") from None
    if len(out) > size:
        raise error(f"{what}: LZ4 frame holds more than the {size} bytes expected")
    if not decompressor.eof:
        raise error(f"{what}: LZ4 frame is cut after {len(out)} of {size} bytes")
    if len(out) != size:
        raise error(f"{what}: LZ4 frame holds {len(out)} bytes, expected {size}")
    if decompressor.unused_data:
        raise error(f"{what}: {len(decompressor.unused_data)} bytes follow the LZ4 frame")
    return out
