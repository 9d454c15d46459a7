"""Stored training clips with JPEG frames of differing sizes, as the workers hand them over with `augment_on:
device` (frames left as bytes for data/device_decode.py), and the same clips with the frames decoded by OpenCV
in the worker (the path before): shared by the CPU and the CUDA decode tests."""
from __future__ import annotations

import numpy as np
import torch

from vda_lightning.data.datasets import train_sample
from vda_lightning.data.format import ClipRecord, decode_members, encode_record
from vda_lightning.data.transforms import AugmentConfig, collate
from vda_lightning.scenes import render_clip

SIZES = ((56, 84), (42, 70))
FRAMES = 3


def raw_jpeg_clip(seed: int, height: int, width: int) -> dict:
    c = render_clip([seed], FRAMES, height, width)
    rec = ClipRecord(c["frames"], "synthetic", f"s{seed}", list(range(FRAMES)),
                     depth=c["depth"].astype(np.float32), mask=c["mask"], K=c["K"], poses=c["poses"])
    return {**encode_record(rec, frame_format="jpg", depth_encoding="f16lz4"), "__key__": f"k{seed}",
            "__url__": "memory"}


def stored_batches(out_hw=(28, 42)) -> tuple[dict, dict]:
    """(the deferred batch: JPEG bytes + stored sizes, the same batch with OpenCV-decoded uint8 frames)."""
    rng, deferred, decoded = np.random.default_rng(0), [], []
    for seed, (h, w) in enumerate(SIZES):
        raw = raw_jpeg_clip(seed, h, w)
        s = train_sample(raw, FRAMES, rng, AugmentConfig(), out_hw, 1e-3, 0.0, True, on_device=True)
        deferred.append(s)
        frames = torch.from_numpy(decode_members(raw).frames).permute(0, 3, 1, 2)
        decoded.append({**{k: v for k, v in s.items() if k not in ("jpeg", "stored_hw")}, "frames": frames})
    return collate(deferred), collate(decoded)
