"""Video files through PyAV (imported on first use): container facts and decoded RGB frames, one at a time."""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .errors import ReadError


@dataclass(frozen=True)
class VideoInfo:
    fps: float                 # the stream's average rate (30 when the container does not say)
    frames: int | None         # frame count the container states (None when it does not)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """What the container says about its first video stream; `ReadError` if it is not a readable video."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ReadError(f"{path}: not a video (no video stream)")
            stream = container.streams.video[0]
            return VideoInfo(float(stream.average_rate or 30.0), int(stream.frames or 0) or None)
    except ReadError:
        raise
    except Exception as e:  # PyAV raises InvalidDataError & co. on non-media files
        raise ReadError(_one_line(f"{path}: not a readable video ({type(e).__name__}: {e})")) from None


def iter_video_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """Every frame of the first video stream as uint8 RGB (H, W, 3), decoded lazily."""
    import av

    with av.open(str(path)) as container:
        decoded = 0
        try:
            for frame in container.decode(video=0):
                yield frame.to_ndarray(format="rgb24")
                decoded += 1
        except av.FFmpegError as e:
            raise ReadError(_one_line(f"{path}: cannot decode frame {decoded} ({e})")) from None
