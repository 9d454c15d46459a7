"""Lazy frame sources for inference: video files and folders of image frames (natural order), read through
`vda_lightning.io`, with the published `run.py` front-end options (max_res, max_len, target_fps).

Each source yields uint8 RGB (H, W, 3) frames one at a time and can be iterated again (the writers
make a second pass for the side-by-side video and the point clouds). Problems become an `InputError`
whose message is one line naming the file and the cause.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..io import IMAGE_EXTENSIONS, ReadError, iter_video_frames, list_files, probe_video, read_frames


class InputError(ValueError):
    """A bad input: the message names the file and the cause, on one line."""


def limited_size(height: int, width: int, max_res: int) -> tuple[int, int]:
    """run.py's rule: scale the long side down to max_res, round, bump odd sides to even (<= 0: no limit)."""
    if max_res <= 0 or max(height, width) <= max_res:
        return height, width
    scale = max_res / max(height, width)
    h, w = round(height * scale), round(width * scale)
    return h + h % 2, w + w % 2


def _resize(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if frame.shape[:2] == size:
        return frame
    import cv2

    return cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA)  # area: alias-free downscale


class FrameSource:
    """Common options: max_res (long-side cap), max_len (frames kept, -1 all), target_fps (-1 native)."""

    def __init__(self, path, max_res: int = 1280, max_len: int = -1, target_fps: float = -1):
        self.path = Path(path)
        self.max_res, self.max_len, self.target_fps = max_res, max_len, target_fps

    native_fps: float = 30.0

    @property
    def fps(self) -> float:
        return self.target_fps if self.target_fps > 0 else self.native_fps

    @property
    def stride(self) -> int:
        return max(round(self.native_fps / self.fps), 1)

    def _raw_frames(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def expected_frames(self) -> int | None:
        """A length estimate for the progress bar (None when the container does not say)."""
        return None

    def __iter__(self) -> Iterator[np.ndarray]:
        kept = 0
        size = None
        try:
            for i, frame in enumerate(self._raw_frames()):
                if i % self.stride:
                    continue
                if 0 <= self.max_len <= kept:
                    break
                if size is None:
                    size = limited_size(*frame.shape[:2], self.max_res)
                yield _resize(frame, size)
                kept += 1
        except ReadError as e:
            raise InputError(str(e)) from None
        if kept == 0:
            raise InputError(f"{self.path}: contains no frames")


class VideoSource(FrameSource):
    def __init__(self, path, **kw):
        super().__init__(path, **kw)
        try:
            info = probe_video(self.path)
        except ReadError as e:
            raise InputError(str(e)) from None
        self.native_fps, self._frames_hint = info.fps, info.frames

    def expected_frames(self) -> int | None:
        if self._frames_hint is None:
            return None
        n = -(-self._frames_hint // self.stride)
        return n if self.max_len < 0 else min(n, self.max_len)

    def _raw_frames(self) -> Iterator[np.ndarray]:
        return iter_video_frames(self.path)


class FolderSource(FrameSource):
    def __init__(self, path, **kw):
        super().__init__(path, **kw)
        self.files = list_files(self.path, IMAGE_EXTENSIONS)
        if not self.files:
            raise InputError(f"{self.path}: folder contains no image frames ({', '.join(IMAGE_EXTENSIONS)})")

    def expected_frames(self) -> int | None:
        n = -(-len(self.files) // self.stride)
        return n if self.max_len < 0 else min(n, self.max_len)

    def _raw_frames(self) -> Iterator[np.ndarray]:
        return read_frames(self.files)


def open_source(path, max_res: int = 1280, max_len: int = -1, target_fps: float = -1) -> FrameSource:
    """A video file or a folder of frames; InputError (one line) when missing or unreadable."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file or directory")
    cls = FolderSource if p.is_dir() else VideoSource
    return cls(p, max_res=max_res, max_len=max_len, target_fps=target_fps)
