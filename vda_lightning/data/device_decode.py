"""JPEG frames decoded where the augmentation runs (`augment_on: device`): the data workers read the tar, check
each JPEG header against the sample's json and pass the bytes on (`format.decode_members(defer_jpeg=True)`); the
DataModule's `on_after_batch_transfer` decodes a whole batch in one `torchvision.io.decode_jpeg` call on the
batch's device (nvJPEG on CUDA), just before `DeviceAugmentation`.

One function for every device: on the CPU it runs libjpeg-turbo, the library OpenCV's `imdecode` uses, and gives
the CPU path's frames bit for bit (tests/test_data_device_decode.py); on CUDA nvJPEG may round differently
(at most one grey level, tests/cuda/test_cuda_decode.py). The bytes travel as Python `bytes`, which Lightning's
transfer leaves on the host, because nvJPEG reads its input from host memory.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def decode_jpeg_clips(jpeg: list[list[bytes]], stored_hw: torch.Tensor, device) -> torch.Tensor:
    """Each clip's JPEG frames -> uint8 (B, T, 3, H, W) on `device`, zero-padded at the bottom and right to the
    batch's largest stored size, as `transforms.collate` pads decoded frames. `stored_hw` (B, 2) is each clip's
    checked size (the worker compared every header with it)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    flat = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for clip in jpeg for b in clip]
    device = torch.device(device)
    images = decode_jpeg(flat, mode=ImageReadMode.RGB, device=device) if flat else []
    sizes = [tuple(hw) for hw in stored_hw.tolist()]
    height, width = max(h for h, _ in sizes), max(w for _, w in sizes)
    clips, start = [], 0
    for clip, (h, w) in zip(jpeg, sizes):
        frames = torch.stack(images[start:start + len(clip)])
        start += len(clip)
        if tuple(frames.shape[-2:]) != (h, w):  # the worker checked the header: a decoder that disagrees is a bug
            raise ValueError(f"a JPEG decoded to {tuple(frames.shape[-2:])}, its header said {(h, w)}")
        clips.append(F.pad(frames, (0, width - w, 0, height - h)) if (h, w) != (height, width) else frames)
    return torch.stack(clips)


def decode_deferred(batch: dict, device) -> dict:
    """A collated batch whose clips carry JPEG bytes (`jpeg`, `stored_hw`) -> the same batch with `frames`."""
    if "jpeg" not in batch:
        return batch
    out = dict(batch)
    out["frames"] = decode_jpeg_clips(out.pop("jpeg"), out.pop("stored_hw"), device)
    return out
