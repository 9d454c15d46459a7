"""The one I/O layer: image, depth and video readers, the benchmark index, atomic writes, rank / world.

Readers raise `ReadError` (a `ValueError`) whose message is one line naming the file and the cause; heavy
decoders (OpenCV, PyAV, OpenEXR, torch) are imported on first use, so importing this package stays cheap.

    from vda_lightning.io import read_frame, read_depth, atomic_path
    depth = read_depth("scene/depth/000001.png", factor=1000.0)       # metres, float32 (H, W)
    with atomic_path("out/depth.npy") as tmp: np.save(tmp, depth)     # appears complete or not at all
"""
from .atomic import (
    AtomicWrite,
    atomic_path,
    remove_stale_temporaries,
    save_npy_atomic,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)
from .benchmark_json import BenchmarkError, read_benchmark_index
from .depth import DEPTH_EXTENSIONS, read_depth, read_float16_png, read_hdf5_array, read_npy, write_dpt
from .distributed import gather_objects, launch_rank_world, rank_world
from .errors import ReadError
from .files import list_files, natural_key
from .images import IMAGE_EXTENSIONS, read_frame, read_frames, read_mask
from .processes import die_with_parent
from .video import VideoInfo, iter_video_frames, probe_video

__all__ = [
    "AtomicWrite", "atomic_path", "remove_stale_temporaries", "save_npy_atomic",
    "write_bytes_atomic", "write_json_atomic", "write_text_atomic",
    "BenchmarkError", "read_benchmark_index",
    "DEPTH_EXTENSIONS", "read_depth", "read_float16_png", "read_hdf5_array", "read_npy", "write_dpt",
    "gather_objects", "launch_rank_world", "rank_world",
    "ReadError",
    "list_files", "natural_key",
    "IMAGE_EXTENSIONS", "read_frame", "read_frames", "read_mask",
    "die_with_parent",
    "VideoInfo", "iter_video_frames", "probe_video",
]
