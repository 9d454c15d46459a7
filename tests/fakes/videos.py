"""Small test videos written with PyAV (libx264, yuv420p): the one writer the inference tests share."""
from __future__ import annotations

import av


def write_video(path, frames, fps=10, *, options=None, codec="libx264", crf=None, rotation=None):
    """uint8 RGB `frames` (N, H, W, 3) -> a video at `path` (returned). `options`: container options (e.g.
    {"movflags": "faststart"}); `crf`: libx264 quality ("0" near lossless); `rotation`: a display-matrix angle."""
    with av.open(str(path), "w", options=options or {}) as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        if crf is not None:
            s.options = {"crf": str(crf)}
        if rotation is not None:
            s.set_display_rotation(rotation)
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def write_clip(path, frames, fps, rotation=None, codec="libx264"):
    """A near-lossless clip (crf 0 for libx264): the frame index drawn into the pixels survives decoding."""
    return write_video(path, frames, fps, codec=codec, crf="0" if codec == "libx264" else None, rotation=rotation)
