"""Long-video inference: the published key-frame windows in bounded memory, the online streaming mode,
frame sources, writers and the `vda-infer` command.

`infer_video_depth(model, frames)` is the in-memory entry point; `OfflineRunner(...).run(iterable)` and
`StreamingRunner(...).run(iterable)` yield one float32 depth map per frame, in order, as soon as it is final.
"""
from .baseline import published_loop
from .offline import OfflineRunner, infer_video_depth
from .preprocess import Preprocessor
from .streaming import StreamingRunner
from .windows import Stitcher, least_squares_scale_shift, num_windows, window_frames

__all__ = [
    "OfflineRunner",
    "StreamingRunner",
    "Preprocessor",
    "Stitcher",
    "infer_video_depth",
    "least_squares_scale_shift",
    "num_windows",
    "published_loop",
    "window_frames",
]
