"""Image readers: RGB frames, binary masks. OpenCV decodes (imported on first use: `--help` stays fast).

Frames come back as uint8 RGB (H, W, 3): `cv2.imread` + BGR→RGB, exactly what the published `run.py` and
benchmark inference (`benchmark/infer/infer.py`) feed the model from image files. The bytes are read through the
trust boundary (`trust.read_image`): regular files only, the header's size checked against VDA_MAX_PIXELS before
decoding, and OpenCV never sees the file name.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import numpy as np

from ..trust import display, read_image
from .errors import ReadError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def _decoded(path: str | os.PathLike, flags: int) -> np.ndarray:
    if not os.path.lexists(path):
        raise ReadError(f"{display(path)}: unreadable image (no such file)")
    return read_image(path, flags, what="image")


def read_frame(path: str | os.PathLike) -> np.ndarray:
    """RGB uint8 (H, W, 3) from any image file OpenCV decodes (8-bit; grey images become 3 equal channels)."""
    import cv2

    return cv2.cvtColor(_decoded(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def read_frames(paths: Iterable[str | os.PathLike]) -> Iterator[np.ndarray]:
    """`read_frame` of each path in turn; every frame must have the first frame's size (a video's frames)."""
    first = first_path = None
    for path in paths:
        frame = read_frame(path)
        if first is None:
            first, first_path = frame.shape, path
        elif frame.shape != first:
            raise ReadError(f"{display(path)}: frame size {frame.shape[1]}x{frame.shape[0]} differs from the first "
                            f"frame's {first[1]}x{first[0]} ({display(first_path)})")
        yield frame


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """bool (H, W): True where a single-channel mask image is non-zero."""
    import cv2

    img = _decoded(path, cv2.IMREAD_UNCHANGED)
    if img.ndim != 2:
        raise ReadError(f"{display(path)}: not a readable single-channel mask image")
    return img > 0
