"""Lazy frame sources for inference — video files and folders of image frames (natural order) — and `read_video`,
the published front end of `run.py` (published `utils/dc_utils.py::read_video_frames`, decord path):

* size: if the long side exceeds `max_res`, both sides are scaled by `max_res / long side`, rounded, and an odd side
  is bumped to the next even number; the resize happens inside the decoder with FFmpeg's bilinear scaler
  (`vda_lightning/io/video.py`: to the pixel on the golden front-end case);
* frames: every `stride`-th decoded frame, `stride = max(round(avg_fps / target_fps), 1)` (Python rounding); then
  at most `max_len` of the *kept* frames;
* fps: `target_fps` when given (even when the clip is slower: the published value), else the stream's average rate.

Frame folders follow the same rules (they count as 30 fps) and are resized by the same scaler.

Where the published code differs from itself, we follow its default decord path and do not copy the others:
* its OpenCV fallback (`dc_utils.py` without decord) resizes with `cv2.resize` (bilinear, after decoding) and does
  not round sizes to even, and its `max_len` counts *decoded* frames — at `--max-len 30 --target-fps 12` on a 24 fps
  clip it gives 15 frames, not 30 (on the golden davis case its 15 frames are 2.16 grey levels off, max 49);
* `run_streaming.py` reads with that same OpenCV loop (decoded-frame `max_len`, `cv2.resize`, no even rounding) and
  saves only the depth video.

Each source yields uint8 RGB (H, W, 3) frames one at a time and can be iterated again (the writers make a second
pass for the videos and the point clouds). Problems become an `InputError` whose message is one line naming the
file (printable: `trust.display`) and the cause.

Inputs come from outside (docs/reliability.md): an input is a folder or a regular file (`trust.regular_file`: a
FIFO among the inputs used to hang the whole batch), video files are read by Python and handed to FFmpeg as a file
object with the stream's size checked against VDA_MAX_PIXELS first (`io/video.py`), and frame files are read
through `trust.read_image` (regular files only, header size checked before decoding, OpenCV never sees a name). A
refused input is one line; the other inputs still run.
"""
from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import numpy as np

from ..io import IMAGE_EXTENSIONS, ReadError, iter_video_frames, list_files, probe_video, read_frames
from ..io.video import RGBConverter
from ..trust import display, regular_file

FOLDER_FPS = 30.0  # a folder of frames has no rate of its own


class InputError(ValueError):
    """A bad input: the message names the file and the cause, on one line."""


def limited_size(height: int, width: int, max_res: int) -> tuple[int, int]:
    """run.py's rule: scale the long side down to max_res, round, bump odd sides to even (<= 0: no limit)."""
    if max_res <= 0 or max(height, width) <= max_res:
        return height, width
    scale = max_res / max(height, width)
    h, w = round(height * scale), round(width * scale)
    return h + h % 2, w + w % 2


class FrameSource:
    """Common options: max_res (long-side cap, <= 0 none), max_len (kept frames, < 0 all; 0 is a ValueError),
    target_fps (<= 0 native)."""

    def __init__(self, path, max_res: int = 1280, max_len: int = -1, target_fps: float = -1):
        if max_len == 0:  # nothing to run on: a caller's mistake, not the input's (`--max-len` refuses it too)
            raise ValueError("max_len must be >= 1, or negative for all frames; got 0")
        self.path = Path(path)
        self.max_res, self.max_len, self.target_fps = max_res, max_len, target_fps
        self.size: tuple[int, int] | None = None  # (H, W) of the frames yielded, known after the first one

    native_fps: float = FOLDER_FPS
    native_size: tuple[int, int] | None = None  # (H, W) of the input's frames before --max-res (known once read)

    @property
    def fps(self) -> float:
        return float(self.target_fps) if self.target_fps > 0 else self.native_fps

    @property
    def stride(self) -> int:
        return max(round(self.native_fps / self.fps), 1)

    def _size_rule(self, height: int, width: int) -> tuple[int, int]:
        self.native_size = (height, width)
        self.size = limited_size(height, width, self.max_res)
        return self.size

    def _strided_frames(self) -> Iterator[np.ndarray]:
        """Frames 0, stride, 2·stride, … at the limited size."""
        raise NotImplementedError

    def _count(self, total: int) -> int:
        n = -(-total // self.stride)
        return n if self.max_len < 0 else min(n, self.max_len)

    def expected_frames(self) -> int | None:
        """A length estimate for the progress bar (None when the container does not say)."""
        return None

    def _check_count(self, kept: int) -> None:
        """Called when the input ended without hitting --max-len; `kept` frames were yielded."""

    def __iter__(self) -> Iterator[np.ndarray]:
        kept = 0
        frames = self._strided_frames()
        try:
            for frame in frames if self.max_len < 0 else islice(frames, self.max_len):
                yield frame
                kept += 1
            limited = 0 <= self.max_len <= kept
        except ReadError as e:
            raise InputError(str(e)) from None
        finally:
            frames.close()  # closes the container now, also when the consumer stops early
        if kept == 0:
            raise InputError(f"{display(self.path)}: contains no frames")
        if not limited:  # the input ended before --max-len was reached
            self._check_count(kept)


class VideoSource(FrameSource):
    def __init__(self, path, **kw):
        super().__init__(path, **kw)
        try:
            info = probe_video(self.path)
        except ReadError as e:
            raise InputError(str(e)) from None
        self.native_fps, self._frames_hint = info.fps, info.frames

    def expected_frames(self) -> int | None:
        return None if self._frames_hint is None else self._count(self._frames_hint)

    def _strided_frames(self) -> Iterator[np.ndarray]:
        return iter_video_frames(self.path, size=self._size_rule, step=self.stride)

    def _check_count(self, kept: int) -> None:
        """A video that decodes fewer frames than its header states was cut short (e.g. an mp4 with its index at
        the front, copied half-way): an error, so that no output looks complete (docs/inference.md)."""
        if self._frames_hint is None:
            return
        expected = -(-self._frames_hint // self.stride)
        if kept >= expected:
            return
        if self.stride == 1:
            told = f"only {kept} of the {self._frames_hint} frames its header states decode"
        else:
            told = (f"only {kept} of the {expected} frames kept at --target-fps (every {self.stride}th of the "
                    f"{self._frames_hint} its header states) decode")
        raise InputError(f"{display(self.path)}: {told} (truncated file?); --max-len {kept} processes the frames that "
                         "are there")


class FolderSource(FrameSource):
    def __init__(self, path, **kw):
        super().__init__(path, **kw)
        try:
            self.files = list_files(self.path, IMAGE_EXTENSIONS)
        except OSError as e:  # an unreadable folder is a bad input, not an output that cannot be written
            raise InputError(f"{display(self.path)}: folder cannot be listed ({e.strerror or e})") from None
        if not self.files:
            raise InputError(f"{display(self.path)}: folder contains no image frames "
                             f"({', '.join(IMAGE_EXTENSIONS)})")

    def expected_frames(self) -> int | None:
        return self._count(len(self.files))

    def _strided_frames(self) -> Iterator[np.ndarray]:
        import av

        convert = None
        for frame in read_frames(self.files[::self.stride]):
            if convert is None:
                convert = RGBConverter(self._size_rule(*frame.shape[:2]))
            yield frame if frame.shape[:2] == self.size else convert(av.VideoFrame.from_ndarray(frame, "rgb24"))


def open_source(path, max_res: int = 1280, max_len: int = -1, target_fps: float = -1) -> FrameSource:
    """A video file or a folder of frames; InputError (one line) when missing, not a regular file or folder (a
    FIFO, a device), or unreadable."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{display(p)}: no such file or directory")
    if p.is_dir():
        return FolderSource(p, max_res=max_res, max_len=max_len, target_fps=target_fps)
    regular_file(p, "input", error=InputError)
    return VideoSource(p, max_res=max_res, max_len=max_len, target_fps=target_fps)


def read_video(path, max_res: int = -1, target_fps: float = -1, max_len: int = -1) -> tuple[np.ndarray, float]:
    """The published front end (`utils/dc_utils.py::read_video_frames`, decord path): uint8 RGB frames (N, H, W, 3)
    and the fps they stand for. A folder of frames works too (30 fps). `InputError` (one line) on bad input.

        frames, fps = read_video("clip.mp4", max_res=480, target_fps=12, max_len=30)
    """
    source = open_source(path, max_res=max_res, max_len=max_len, target_fps=target_fps)
    return np.stack(list(source)), source.fps
