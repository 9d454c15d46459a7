"""The procedural scenes (`vda_lightning/scenes.py`) written as shards: the embedded default data of the
DataModule (data/README.md §5): train-*.tar and val-*.tar clips with exact metric z-depth, K and poses, and
image-*.tar single frames labelled with relative disparity.
"""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np
from tqdm import tqdm

from ..scenes import render_clip
from .format import ClipRecord, sample_key
from .shards import ShardWriter, shard_is_complete


def _spec_hash(**kw) -> str:
    return hashlib.sha1(json.dumps(kw, sort_keys=True).encode()).hexdigest()[:16]


def _write_split(out_dir, split, n_items, per_shard, seed, split_id, clip_len, height, width, encode_kw, progress):
    paths = []
    n_shards = (n_items + per_shard - 1) // per_shard
    for s in tqdm(range(n_shards), desc=f"synthetic {split}", disable=not progress, unit="shard"):
        path = os.path.join(out_dir, f"{split}-{s:06d}.tar")
        items = list(range(s * per_shard, min(n_items, (s + 1) * per_shard)))
        spec = _spec_hash(split=split, items=items, seed=seed, clip_len=clip_len, h=height, w=width, **encode_kw)
        paths.append(path)
        if shard_is_complete(path, spec):
            continue
        with ShardWriter(path, spec_hash=spec, **encode_kw) as w:
            for i in items:
                c = render_clip([seed, split_id, i], clip_len, height, width)
                if split == "image":  # image samples carry their label as a (relative) pseudo-label disparity
                    disp = np.where(c["mask"], 1.0 / np.maximum(c["depth"], 1e-6), 0).astype(np.float32)
                    rec = ClipRecord(c["frames"], "synthetic", f"image{i:06d}", [0], depth=disp, mask=c["mask"],
                                     K=c["K"], poses=c["poses"], depth_kind="pseudo_label", depth_units="unitless",
                                     sample_type="image", key=sample_key("synthetic", f"image{i:06d}", 0))
                else:
                    rec = ClipRecord(c["frames"], "synthetic", f"{split}{i:06d}", list(range(clip_len)),
                                     depth=c["depth"], mask=c["mask"], K=c["K"], poses=c["poses"],
                                     depth_kind="metric_depth", depth_units="m",
                                     key=sample_key("synthetic", f"{split}{i:06d}", 0))
                w.write(rec)
    return paths


def generate_synthetic_shards(out_dir: str, n_train_clips: int = 64, n_val_clips: int = 8, clip_len: int = 8,
                              height: int = 112, width: int = 154, seed: int = 0, clips_per_shard: int = 8,
                              n_image_samples: int = 0, images_per_shard: int = 64, frame_format: str = "png",
                              depth_encoding: str = "png16", progress: bool = True) -> dict[str, list[str]]:
    """Write train-*.tar, val-*.tar (and image-*.tar) synthetic shards into out_dir; return their paths by split.

    Deterministic per `seed` (clip i of a split is a function of (seed, split, i) only); shards that are already
    complete with the same parameters are not rewritten, so calling it again is cheap.
    """
    os.makedirs(out_dir, exist_ok=True)
    enc = dict(frame_format=frame_format, depth_encoding=depth_encoding)
    out = {"train": _write_split(out_dir, "train", n_train_clips, clips_per_shard, seed, 1, clip_len, height, width,
                                 enc, progress),
           "val": _write_split(out_dir, "val", n_val_clips, clips_per_shard, seed, 2, clip_len, height, width,
                               enc, progress)}
    if n_image_samples:
        out["image"] = _write_split(out_dir, "image", n_image_samples, images_per_shard, seed, 3, 1, height, width,
                                    enc, progress)
    return out
