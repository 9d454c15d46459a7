"""A tiny benchmark in the published layout, with matching noisy predictions, for smoke tests and demos.

`make_tiny_benchmark(root, "kitti", sequences=3)` writes `<root>/benchmark/kitti/kitti_video.json`, RGB and
16-bit depth PNGs, and `<root>/predictions/kitti/<seq>/rgb/*.npy`. With `with_pose=True` every entry carries a
4×4 K and a camera-to-world pose (what the TAE needs).
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from vda_lightning.io.benchmarks import get_benchmark


def _pose(rng: np.random.Generator, step: int) -> list:
    angle = 0.02 * step + 0.01 * rng.standard_normal()
    c, s = np.cos(angle), np.sin(angle)
    pose = np.eye(4)
    pose[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    pose[:3, 3] = [0.05 * step, 0.0, 0.03 * step]
    return pose.tolist()


def make_tiny_benchmark(root: Path, dataset: str = "kitti", sequences: int = 3, frames: int = 5,
                        height: int = 24, width: int = 32, with_pose: bool = False, seed: int = 0,
                        json_name: str | None = None) -> Path:
    """Write the benchmark and predictions; returns `root`. Depth stays within the dataset's depth cap."""
    spec = get_benchmark(dataset)
    rng = np.random.default_rng(seed)
    root = Path(root)
    bench_dir = root / "benchmark" / spec.dataset
    entries = []
    for s in range(sequences):
        name = f"seq{s:02d}"
        base = rng.uniform(0.5, 0.8 * min(spec.max_depth, 10.0), size=(height, width))
        items = []
        for f in range(frames):
            depth = np.clip(base * (1 + 0.05 * f) + rng.uniform(0, 0.1, size=base.shape), 0.2, None)
            depth[rng.random(depth.shape) < 0.05] = 0.0  # sensor drop-outs
            raw = np.clip(np.round(depth * spec.factor), 0, 65535).astype(np.uint16)
            image = f"{name}/rgb/{f:05d}.png"
            gt = f"{name}/depth/{f:05d}.png"
            for rel, arr in ((gt, raw), (image, rng.integers(0, 255, (height, width, 3), dtype=np.uint8))):
                (bench_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(bench_dir / rel), arr)
            disparity = 1.0 / np.maximum(raw / spec.factor, 0.2)
            pred = (0.7 * disparity + 0.1 + rng.normal(0, 0.05, disparity.shape)).astype(np.float32)
            pred_path = root / "predictions" / spec.dataset / image.replace(".png", ".npy")
            pred_path.parent.mkdir(parents=True, exist_ok=True)
            np.save(pred_path, pred)
            entry = {"image": image, "gt_depth": gt, "factor": spec.factor}
            if with_pose:
                fx = 0.8 * width
                entry["K"] = [[fx, 0, width / 2 - 0.5, 0], [0, fx, height / 2 - 0.5, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
                entry["pose"] = _pose(rng, f)
            items.append(entry)
        entries.append({name: items})
    (bench_dir / (json_name or spec.json_name)).write_text(json.dumps({spec.dataset: entries}, indent=1))
    return root
