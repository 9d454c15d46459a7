"""Procedural scenes (`vda_lightning.scenes`, exact metric z-depth) written as a benchmark in the
published layout, so that `vda-eval` can score a model trained on the synthetic shards, in metres.

`write_synthetic_benchmark(root, "kitti", sequences=3, frames=8)` writes `<root>/kitti/kitti_video.json`, RGB PNGs
and 16-bit depth PNGs at the benchmark's factor (KITTI: depth x 256, so up to 256 m at 4 mm steps; sky = 0 =
missing). The scenes use their own seeds, so they are not the training clips.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from vda_lightning.io.benchmarks import get_benchmark
from vda_lightning.scenes import render_clip


def write_synthetic_benchmark(root: Path, name: str = "kitti", sequences: int = 3, frames: int = 8,
                              height: int = 84, width: int = 112, seed: int = 77) -> Path:
    spec = get_benchmark(name)
    folder = Path(root) / spec.dataset
    entries = []
    for s in range(sequences):
        clip = render_clip([seed, 4242, s], frames, height, width)
        seq = f"scene{s:02d}"
        items = []
        for t in range(frames):
            image, gt = f"{seq}/rgb/{t:05d}.png", f"{seq}/depth/{t:05d}.png"
            (folder / image).parent.mkdir(parents=True, exist_ok=True)
            (folder / gt).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / image), clip["frames"][t][..., ::-1])
            raw = np.clip(np.round(clip["depth"][t].astype(np.float64) * spec.factor), 0, 65535).astype(np.uint16)
            cv2.imwrite(str(folder / gt), raw)
            items.append({"image": image, "gt_depth": gt, "factor": spec.factor})
        entries.append({seq: items})
    (folder / spec.json_name).write_text(json.dumps({spec.dataset: entries}))
    return Path(root)
