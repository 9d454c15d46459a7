"""Video files through PyAV (imported on first use): container facts and decoded RGB frames, one at a time.

Frames are converted to RGB — and resized, when asked — by FFmpeg's scaler inside the decoding pipeline, exactly as
the published front end gets them from decord (published `utils/dc_utils.py::read_video_frames`, decord 0.6.0):
decord feeds every decoded frame through the filter graph `buffer -> scale=W:H -> buffersink(rgb24)` that it builds
with libavfilter's defaults (decord `src/video/ffmpeg/threaded_decoder.cc`, `filter_graph.cc`), which for the
FFmpeg 4.1 it ships with means swscale `flags=bilinear` (no ACCURATE_RND, no FULL_CHR_H_INT), the colour matrix of
the stream (BT.601 limited range when unspecified) and swscale's default chroma siting (centred for 4:2:0, whatever
the stream says). We build the same graph with PyAV (`scale=W:H:flags=bilinear`, `format=rgb24`): on the golden
front-end case this reproduces decord's frames to the pixel. `VideoFrame.to_ndarray("rgb24")` / `reformat()` do NOT
(they honour the stream's left chroma siting: up to 16 grey levels apart), nor does resizing after decoding.
Rotated clips (display matrix) are turned upright first with `transpose`, as decord does.

Trust (docs/reliability.md): FFmpeg never sees a file name — the file is checked to be a regular file
(`trust.regular_file`: a FIFO would block the demuxer for ever) and opened by Python, and PyAV reads the open file
object (a name that is not UTF-8 reached OpenCV and crashed it; no native library gets a name from here). The
stream's width x height from the container header goes through `trust.check_pixels` (VDA_MAX_PIXELS) before any
frame is decoded, and every decoded frame's size again (a stream may change size mid-way).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..trust import check_pixels, display, regular_file
from .errors import ReadError

SCALER_FLAGS = "bilinear"  # what decord 0.6.0 gets from FFmpeg 4.1's `scale` filter (its default `flags`)
# transpose filters decord puts before the scaler, by clockwise display rotation (threaded_decoder.cc)
ROTATION_FILTERS = {90: ["transpose=1"], 180: ["transpose=1", "transpose=1"], 270: ["transpose=2"]}

Size = tuple[int, int]


@dataclass(frozen=True)
class VideoInfo:
    fps: float                 # the stream's average rate (30 when the container does not say)
    frames: int | None         # frame count the container states (None when it does not)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _cause(e: Exception) -> str:
    """FFmpeg's reason without the file name PyAV appends (the caller names the file, printable)."""
    return _one_line(getattr(e, "strerror", None) or e)


@contextmanager
def open_video(path: str | os.PathLike):
    """A PyAV input container reading `path` through a Python file object (FFmpeg never sees the name), after
    `trust.regular_file` says it is a regular file; `ReadError` (one line naming the file) otherwise."""
    import av

    what = display(path)
    regular_file(path, "video", error=ReadError)
    with open(path, "rb") as f:
        try:
            container = av.open(f)
        except Exception as e:  # PyAV raises InvalidDataError & co. on non-media files
            raise ReadError(f"{what}: not a readable video ({type(e).__name__}: {_cause(e)})") from None
        with container:
            yield container


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """What the container says about its first video stream; `ReadError` if it is not a readable video, or if
    its header states more than VDA_MAX_PIXELS per frame."""
    what = display(path)
    with open_video(path) as container:
        try:
            if not container.streams.video:
                raise ReadError(f"{what}: not a video (no video stream)")
            stream = container.streams.video[0]
            height, width = int(stream.codec_context.height), int(stream.codec_context.width)
            rate, frames = stream.average_rate, stream.frames
        except ReadError:
            raise
        except Exception as e:
            raise ReadError(f"{what}: not a readable video ({type(e).__name__}: {_cause(e)})") from None
    if height or width:  # 0 x 0: the container does not say (the decoded frames are checked)
        check_pixels(height, width, f"{what}: video stream", ReadError)
    return VideoInfo(float(rate or 30.0), int(frames or 0) or None)


def clockwise_rotation(frame) -> int:
    """The display rotation of a decoded frame, clockwise in {0, 90, 180, 270} (decord's `GetRotation`)."""
    return int(-round(getattr(frame, "rotation", 0) or 0)) % 360


class RGBConverter:
    """uint8 RGB (H, W, 3) frames from decoded `av.VideoFrame`s through FFmpeg's filter graph (see module doc).

    `size` (H, W) of the output, or a function of the upright (H, W) of the first frame giving it; None keeps the
    size. The graph is rebuilt if the input's size or pixel format changes mid-stream.
    """

    def __init__(self, size: Size | Callable[[int, int], Size] | None = None, flags: str = SCALER_FLAGS):
        self._size, self.flags = size, flags
        self._graph = self._key = None
        self.out_size: Size | None = None

    def _build(self, frame) -> None:
        import av

        rotation = clockwise_rotation(frame)
        upright = (frame.width, frame.height) if rotation in (90, 270) else (frame.height, frame.width)
        if self.out_size is None:
            size = self._size(*upright) if callable(self._size) else self._size
            self.out_size = tuple(int(s) for s in (size or upright))
        h, w = self.out_size
        graph = av.filter.Graph()
        chain = [graph.add_buffer(width=frame.width, height=frame.height, format=frame.format,
                                  time_base=frame.time_base or Fraction(1, 1000))]  # images have none
        chain += [graph.add("transpose", f.split("=")[1]) for f in ROTATION_FILTERS.get(rotation, [])]
        chain += [graph.add("scale", f"{w}:{h}:flags={self.flags}"), graph.add("format", "rgb24"),
                  graph.add("buffersink")]
        for a, b in zip(chain, chain[1:]):
            a.link_to(b)
        graph.configure()
        self._graph, self._key = graph, (frame.width, frame.height, frame.format.name, rotation)

    def __call__(self, frame) -> np.ndarray:
        if self._key != (frame.width, frame.height, frame.format.name, clockwise_rotation(frame)):
            self._build(frame)
        self._graph.push(frame)
        return self._graph.pull().to_ndarray()


def iter_video_frames(path: str | os.PathLike, size: Size | Callable[[int, int], Size] | None = None,
                      step: int = 1) -> Iterator[np.ndarray]:
    """Frames 0, step, 2·step, … of the first video stream as uint8 RGB (H, W, 3), decoded lazily.

    `size`: see `RGBConverter` (None: the stored size, upright). Every frame is decoded (the codec needs them); only
    the kept ones go through the scaler. A decoded frame over VDA_MAX_PIXELS is a `ReadError`.
    """
    import av

    what = display(path)
    convert = RGBConverter(size)
    checked = None
    with open_video(path) as container:
        decoded = 0
        try:
            for frame in container.decode(video=0):
                if (frame.height, frame.width) != checked:
                    check_pixels(frame.height, frame.width, f"{what}: frame {decoded}", ReadError)
                    checked = (frame.height, frame.width)
                if decoded % step == 0:
                    yield convert(frame)
                decoded += 1
        except av.FFmpegError as e:
            raise ReadError(f"{what}: cannot decode frame {decoded} ({_cause(e)})") from None


def resize_rgb(frame: np.ndarray, size: Size, flags: str = SCALER_FLAGS) -> np.ndarray:
    """An RGB uint8 image resized by the same FFmpeg scaler (`flags`) that resizes video frames — for frame folders,
    so that they follow the video path's resampling."""
    import av

    frame = np.ascontiguousarray(frame, dtype=np.uint8)
    if frame.shape[:2] == tuple(size):
        return frame
    return RGBConverter(size, flags)(av.VideoFrame.from_ndarray(frame, format="rgb24"))
