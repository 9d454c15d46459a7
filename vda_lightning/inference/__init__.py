"""Long-video inference: the published key-frame windows in bounded memory, the online streaming mode,
frame sources, writers and the `vda infer` command.

`infer_video(model, frames_or_path)` / `infer_video_iter(...)` (api.py, also at the top level) and
`read_video(path, ...)` (the published front end) are the Python API; `infer_video_depth(model, frames)` the
in-memory runner call; `OfflineRunner(...).run(iterable)` and
`StreamingRunner(...).run(iterable)` yield one float32 depth map per frame, in order, as soon as it is final.
"""
from ..lazy import lazy_exports

_EXPORTS = {
    "OfflineRunner": "offline",
    "StreamingRunner": "streaming",
    "Preprocessor": "preprocess",
    "Stitcher": "windows",
    "infer_video": "api",
    "infer_video_depth": "offline",
    "infer_video_iter": "api",
    "read_video": "frame_sources",
    "least_squares_scale_shift": "windows",
    "num_windows": "windows",
    "published_loop": "baseline",
    "window_frames": "windows",
}
__all__ = list(_EXPORTS)
# Names resolve on first use (vda_lightning/lazy.py): `vda infer --help` does not import torch.
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
