"""The Python API of inference, exported at the top level (`vda_lightning.infer_video`, `infer_video_iter`):

    import vda_lightning as vda
    model = vda.load_model("video_depth_anything_vits.pth")
    frames, fps = vda.read_video("clip.mp4", max_res=1280)        # the published run.py front end
    depths = vda.infer_video(model, frames)                       # float32 (N, H, W); CUDA when available
    for depth in vda.infer_video_iter(model, "long.mp4"): ...     # one map at a time, bounded memory
    metres = vda.infer_video(metric_model, frames, camera=(fx, fy))  # a canonical-camera metric model

Defaults follow the published `run.py`: input size 518, the device is CUDA when one is visible, and the precision
is fp16 autocast on CUDA (the published default) but fp32 on the CPU (the published script would autocast there
too — bfloat16 — unless `--fp32`; we keep the CPU exact).
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from ..models.input_contract import DEFAULT_INPUT_SIZE


def _model(model):
    if isinstance(model, str | os.PathLike):
        from ..checkpoints import load_model

        return load_model(model, expect="video")
    return model


def _frames(frames_or_path, max_res: int, target_fps: float, max_len: int) -> Iterable[np.ndarray]:
    if isinstance(frames_or_path, str | os.PathLike):
        from .frame_sources import open_source

        return open_source(Path(frames_or_path), max_res=max_res, max_len=max_len, target_fps=target_fps)
    if isinstance(frames_or_path, np.ndarray):
        if frames_or_path.ndim != 4 or frames_or_path.shape[-1] != 3 or frames_or_path.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 RGB (N, H, W, 3), got {frames_or_path.shape} "
                             f"{frames_or_path.dtype}")
    return frames_or_path


def infer_video_iter(model, frames_or_path, input_size: int = DEFAULT_INPUT_SIZE, device="auto",
                     precision: str | None = None, mode: str = "offline", *, camera=None, max_res: int = -1,
                     target_fps: float = -1, max_len: int = -1) -> Iterator[np.ndarray]:
    """Depth maps (float32 (H, W), at the frames' size) one at a time, in frame order, as soon as each is final.

    `model`: a loaded model or a checkpoint path. `frames_or_path`: uint8 RGB frames (an (N, H, W, 3) array or
    any iterable of (H, W, 3) arrays — a generator is fine) or a video file / frame folder, read with
    `read_video`'s rules (`max_res`, `target_fps`, `max_len`). `device="auto"`: CUDA when available;
    `precision=None`: fp16 on CUDA, fp32 elsewhere. `mode`: "offline" (the published key-frame windows, aligned)
    or "streaming" (the published online mode: one frame in, one out, no alignment).
    `camera`: the camera that took the frames, as `vda infer` takes it (inference/camera.py): fx or (fx, fy) in
    pixels of the frames as processed (`--focal-length-x/-y`), or a 3x3 K / intrinsics file of the input at its
    own size (`--intrinsics`). A metric model trained for a canonical camera (`config.canonical_focal`) needs it
    to give metres, and is refused without it (CameraError, a ValueError), as `vda infer` refuses it; other
    models ignore it. Memory stays bounded for any length.
    """
    from .camera import CameraError, camera_from_argument, metres_converter, missing_camera
    from .runners import make_runner

    cam = camera_from_argument(camera)
    model = _model(model).eval()
    problem = missing_camera(getattr(model, "config", None), cam)
    if problem:
        raise CameraError(f"this model {problem}; give the camera of these frames with camera= (fx, (fx, fy) or "
                          "a 3x3 K) to get metres")
    runner = make_runner(model, mode, input_size, device, precision)
    source = _frames(frames_or_path, max_res, target_fps, max_len)
    maps = runner.run(iter(source))
    to_metres = metres_converter(getattr(model, "config", None), cam, source)
    return maps if to_metres is None else (to_metres(depth) for depth in maps)


def infer_video(model, frames_or_path, input_size: int = DEFAULT_INPUT_SIZE, device="auto",
                precision: str | None = None, mode: str = "offline", *, camera=None, max_res: int = -1,
                target_fps: float = -1, max_len: int = -1) -> np.ndarray:
    """All depth maps of a clip at once: float32 (N, H, W). Same arguments as `infer_video_iter`, which is the
    form for videos too long to hold (N float32 maps at the frames' size)."""
    maps = infer_video_iter(model, frames_or_path, input_size, device, precision, mode, camera=camera,
                            max_res=max_res, target_fps=target_fps, max_len=max_len)
    return np.stack(list(maps))
